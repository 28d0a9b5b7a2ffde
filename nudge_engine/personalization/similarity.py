"""Content similarity of nudges, learned locally from their titles, bodies, tags and category.

TF-IDF over words and word pairs, reduced with truncated SVD (fixed seed) to dense unit vectors;
similarity is the cosine of two vectors. Nothing is downloaded: the catalog is the whole corpus,
so the embeddings are a pure function of the catalog (and are refitted when it changes).

Uses: "more like this" (nudges close to one the patient just completed) and the diversity
constraint (no near-duplicate of the nudge delivered last).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from nudge_engine.personalization.catalog import Catalog

SEED = 20250601
DEFAULT_DIMENSIONS = 24
NEAR_DUPLICATE = 0.8  # cosine above which two nudges are near-duplicates (see tests/unit/agenda)


@dataclass(frozen=True, slots=True)
class ContentSimilarity:
    """Unit embeddings of a catalog's nudges (row ``i`` is nudge ``i``) and their cosine matrix."""

    nudge_ids: tuple[str, ...]
    catalog_digest: str
    vectors: npt.NDArray[np.float64]  # (N, d), unit length
    cosine: npt.NDArray[np.float64]  # (N, N), in [-1, 1], 1 on the diagonal

    @classmethod
    def fit(cls, catalog: Catalog, *, dimensions: int = DEFAULT_DIMENSIONS, seed: int = SEED) -> ContentSimilarity:
        docs = [nudge_text(catalog, i) for i in range(len(catalog))]
        tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, stop_words="english")
        x = tfidf.fit_transform(docs)
        k = max(1, min(dimensions, x.shape[0] - 1, x.shape[1] - 1))
        dense = TruncatedSVD(n_components=k, random_state=seed).fit_transform(x)
        norm = np.linalg.norm(dense, axis=1, keepdims=True)
        vectors = np.divide(dense, norm, out=np.zeros_like(dense), where=norm > 0)
        cosine = np.clip(vectors @ vectors.T, -1.0, 1.0)
        np.fill_diagonal(cosine, 1.0)
        return cls(catalog.ids, catalog.digest, vectors, cosine)

    def most_similar(self, nudge_id: str, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` nudges closest to ``nudge_id`` ("more like this"), best first, itself excluded."""
        i = self.nudge_ids.index(nudge_id)
        row = self.cosine[i].copy()
        row[i] = -np.inf
        order = np.argsort(-row, kind="stable")[:k]
        return [(self.nudge_ids[j], float(row[j])) for j in order]

    def near_duplicates(self, threshold: float = NEAR_DUPLICATE) -> npt.NDArray[np.bool_]:
        """(N, N): pairs of different nudges with cosine above ``threshold``."""
        out: npt.NDArray[np.bool_] = self.cosine > threshold
        np.fill_diagonal(out, False)
        return out


def nudge_text(catalog: Catalog, i: int) -> str:
    """The text a nudge is embedded from: title (twice, it carries the gist), body, tags, category."""
    e = catalog.entries[i]
    tags = " ".join(t.replace("_", " ") for t in e.tags)
    return f"{e.title}. {e.title}. {e.body} {tags} {e.category.value.replace('_', ' ')}"
