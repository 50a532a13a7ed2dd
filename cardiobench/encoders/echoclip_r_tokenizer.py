"""EchoCLIP-R's template tokenizer, reimplemented from its published description.

EchoCLIP-R encodes a report as a sequence of *template phrases* (one id each) followed by the
*variables* (numbers, severity words) that filled each phrase's ``<#>`` slots. Ids, as the official
``template_tokenize`` assigns them:

- phrase ids come from a ``tokenizers`` WordPiece tokenizer (``blank_wordpiece.tokenizer``: only
  ``[UNK] [CLS] [SEP] [PAD] [MASK]``) extended with every line of ``template_vocab.txt`` as an
  added token, so phrases are matched verbatim and anything else becomes ``[UNK]`` (dropped);
- variable ids come from a second copy of the blank tokenizer extended with ``0..100``, ``‡``, the
  severity words, ``.0..9`` and ``00..09``; a phrase's variables are joined with ``‡`` and offset
  by the template vocabulary size;
- ``BOS`` / ``EOS`` are the next two ids (907 / 908 with the real files); the sequence is padded
  with 0 or truncated to 77 with the last kept token forced to EOS, the largest id, which
  open_clip's argmax text pooling selects.

Both files are under echo_CLIP's academic licence, so cardiobench never ships them: the user
downloads them from https://github.com/echonet/echo_CLIP and points us at their folder.
Report cleaning needs echo_CLIP's own ``clean_text``, from its ``utils.py``: put that file beside the
two files for token-for-token official ids (only ``clean_text`` and what it uses is executed). Without
it, :func:`basic_clean` runs, which is exact only for prompts written in the template phrasing (it
adds a final period, so e.g. a bare "severe dilated left ventricle" gets different tokens), and a
warning says so. :attr:`TemplateTokenizer.identity` records which cleaner ran (the sha256 of
``utils.py``, or ``builtin``). A prompt that matches no template phrase tokenises to ``[BOS, EOS]``
(one shared embedding for all such prompts); a warning names it.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import torch

from cardiobench.weights import WeightsNotFound

log = logging.getLogger(__name__)

VOCAB_FILE = "template_vocab.txt"
WORDPIECE_FILE = "blank_wordpiece.tokenizer"
ENV_DIR = "CARDIOBENCH_ECHOCLIP_R_DIR"
REPO_URL = "https://github.com/echonet/echo_CLIP"
PLACEHOLDER = "<#>"
SEPARATOR = "\u2021"  # '‡' separates the variables of one phrase
SEVERITIES = ("MILD", "MODERATE", "SEVERE", "MILD/MODERATE", "MODERATE/SEVERE")

_NUMBER = r"(?:\d+\.?\d*)"
_VARIABLE = re.compile(r"(\d+\.?\d*)|((?<![A-Za-z])(?:MODERATE/SEVERE|MILD/MODERATE|MILD|MODERATE|"
                       r"SEVERE|VERY SEVERE))")
OFFICIAL_UTILS = "utils.py"


def basic_clean(text: str) -> str:
    """Our own minimal report normalisation: upper case, units attached, one space, final period.

    EchoCLIP-R's training reports went through echo_CLIP's ``clean_text`` (academic licence, not
    shipped). When the user's checkout provides it (``utils.py`` beside the vocab files),
    :class:`TemplateTokenizer` uses it instead; this fallback is exact for prompts already written
    in the template phrasing (upper case, ``<value><unit>``, sentences ending in a period), which
    is how cardiobench's prompt sets are written.
    """
    text = text.upper().strip()
    text = re.sub(r"\s+(MMHG|MM|CM|%)", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    if text and not text.endswith("."):
        text += "."
    return text + " "


def _needed_nodes(tree: ast.Module, entry: str) -> list[ast.stmt]:
    """The top-level statements ``entry`` needs: its def, the defs/assignments/imports of the
    module-level names it uses (transitively), in file order. Nothing else is executed."""
    bound: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound[node.name] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound[(alias.asname or alias.name).split(".")[0]] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound[target.id] = node
    if entry not in bound:
        return []
    keep: set[int] = set()
    todo = [bound[entry]]
    while todo:
        node = todo.pop()
        if id(node) in keep:
            continue
        keep.add(id(node))
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        todo.extend(bound[n] for n in names if n in bound and id(bound[n]) not in keep)
    return [node for node in tree.body if id(node) in keep]


def load_official_cleaner(folder: Path) -> tuple[Callable[[str], str], str] | None:
    """echo_CLIP's own ``clean_text`` from the user's checkout and the sha256 of that ``utils.py``,
    or None when it is not there.

    Only ``clean_text`` and the module-level names it uses are executed (parsed with :mod:`ast`),
    not the whole ``utils.py``, whose other functions import video and plotting libraries.
    """
    path = folder / OFFICIAL_UTILS
    if not path.is_file():
        return None
    source = path.read_bytes()
    try:
        tree = ast.parse(source, filename=str(path))
        nodes = _needed_nodes(tree, "clean_text")
        if not nodes:
            raise ValueError("it defines no clean_text")
        namespace: dict[str, object] = {"__name__": "_echo_clip_clean_text"}
        exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)
        return namespace["clean_text"], hashlib.sha256(source).hexdigest()  # type: ignore[return-value]
    except Exception as exc:  # their file may change; fall back, but say so
        log.warning("could not use %s's clean_text (%s); using cardiobench's basic cleaning, which "
                    "is exact only for prompts in template phrasing", path, exc)
        return None


def split_variables(text: str) -> tuple[list[str], str]:
    """Pull numbers and severity words out of ``text``; return them and the text with ``<#>``."""
    found = [a or b for a, b in _VARIABLE.findall(text)]
    return found, _VARIABLE.sub(PLACEHOLDER, text)


def default_dir() -> Path:
    """Where the user's copies are looked for: ``$CARDIOBENCH_ECHOCLIP_R_DIR`` or the cache."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "cardiobench" / "echo_clip_r"


class TemplateTokenizer:
    """Callable ``list[str] -> LongTensor (N, context_length)`` with EchoCLIP-R's template ids."""

    def __init__(self, folder: str | Path | None = None, context_length: int = 77):
        folder = Path(folder).expanduser() if folder is not None else default_dir()
        missing = [f for f in (VOCAB_FILE, WORDPIECE_FILE) if not (folder / f).is_file()]
        if missing:
            raise WeightsNotFound(
                f"EchoCLIP-R's text tokenizer needs {' and '.join(missing)} in {folder}. They are "
                f"not on the Hugging Face Hub and cardiobench cannot ship them (academic licence): "
                f"download {VOCAB_FILE} and {WORDPIECE_FILE} from {REPO_URL} (repository root) and "
                f"put them in {folder}, or pass tokenizer_dir=FOLDER, or set ${ENV_DIR}. "
                "open_clip's CLIP BPE tokenizer is NOT a substitute (it gives wrong text embeddings).")
        from tokenizers import Tokenizer

        self.folder = folder
        self.context_length = int(context_length)
        with open(folder / VOCAB_FILE, encoding="utf-8") as f:
            phrases = [line.rstrip("\n") for line in f.readlines()]
        self._phrases = Tokenizer.from_file(str(folder / WORDPIECE_FILE))
        self._phrases.add_tokens(phrases)
        self._variables = Tokenizer.from_file(str(folder / WORDPIECE_FILE))
        self._variables.add_tokens(
            ["[UNK]"] + [str(i) for i in range(101)] + [SEPARATOR] + list(SEVERITIES)
            + [f".{i}" for i in range(10)] + [f"0{i}" for i in range(10)])
        self.template_vocab_size = self._phrases.get_vocab_size(with_added_tokens=True)
        self.variable_vocab_size = self._variables.get_vocab_size(with_added_tokens=True)
        self.bos_id = self.template_vocab_size + self.variable_vocab_size
        self.eos_id = self.bos_id + 1
        self._slots = {i: tok.count(PLACEHOLDER) for tok, i in self._phrases.get_vocab().items()}
        self._unk = self._phrases.token_to_id("[UNK]")
        official = load_official_cleaner(folder)
        if official is None:
            log.warning("EchoCLIP-R: %s has no echo_CLIP %s; cleaning reports with cardiobench's "
                        "basic_clean, which matches the official clean_text only for prompts in "
                        "template phrasing (copy utils.py from %s beside the vocabulary for exact "
                        "tokens)", folder, OFFICIAL_UTILS, REPO_URL)
            self.clean, self.cleaner = basic_clean, "builtin"
        else:
            self.clean, self.cleaner = official
        self._warned: set[str] = set()

    @property
    def identity(self) -> str:
        """Which tokenizer and cleaner ran: ``TemplateTokenizer[cleaner=<sha256 of utils.py>|builtin]``
        (the text cache keys on it)."""
        return f"TemplateTokenizer[cleaner={self.cleaner}]"

    def encode(self, report: str) -> list[int]:
        """One report → its id sequence, padded/truncated to ``context_length``."""
        values, text = split_variables(self.clean(report))
        enc = self._phrases.encode(text)
        # Variables inside unrecognised text are dropped with it; keep only those in phrases.
        keep: list[bool] = []
        for (start, end), tid in zip(enc.offsets, enc.ids):
            if tid == self._unk:
                keep.extend([False] * text[start:end].count(PLACEHOLDER))
            else:
                keep.extend([True] * self._slots[tid])
        queue = [v for v, k in zip(values, keep) if k]
        ids = [self.bos_id]
        for tid in enc.ids:
            if tid == self._unk:
                continue
            n = self._slots[tid]
            mine, queue = queue[:n], queue[n:]
            ids.append(tid)
            ids.extend(v + self.template_vocab_size
                       for v in self._variables.encode(SEPARATOR.join(mine)).ids)
        ids.append(self.eos_id)
        if len(ids) == 2 and report not in self._warned:
            # nothing matched a template phrase: every such prompt gets the same embedding
            self._warned.add(report)
            log.warning("EchoCLIP-R: prompt %r matches no template phrase and tokenises to "
                        "[BOS, EOS]; write it in EchoCLIP-R's template phrasing", report)
        if len(ids) > self.context_length:
            ids = ids[: self.context_length]
            ids[-1] = self.eos_id
        return ids + [0] * (self.context_length - len(ids))

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Tokenise a batch of reports (open_clip tokenizer calling convention)."""
        if isinstance(texts, str):
            texts = [texts]
        return torch.tensor([self.encode(t) for t in texts], dtype=torch.long)
