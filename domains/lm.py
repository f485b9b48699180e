"""Language models on Shakespeare (or the user's text), at the character or the word level.

The paper's LM experiments used LSTM language models; so does this domain. Sizes:

- ``unit="char"``: subset size in characters; metric bits per character (cross-entropy / ln 2).
- ``unit="word"``: subset size in word tokens; metric cross-entropy per word in nats.

Registered models (`LMPredictor`, see `domains.serve`) take a column ``text`` and return the
loss of each text in the metric's unit and, on request, a sampled continuation.

Vocabulary: built from the training pool only (never from held-out text), with ``<unk>`` for
anything unseen. At the word level it keeps words seen at least ``WORD_MIN_COUNT`` times in the
training pool. The vocabulary is the same for every subset so that the metric means the same
thing at every m (a per-subset vocabulary would map more validation words to an easy ``<unk>`` at
small m and flatten the learning curve).

Run one trial by hand::

    scal train --domain lm --unit char --subset-size 16384 --width 64
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from domains import text as corpora
from domains.common import no_pool, train_trial
from domains.protocol import DataError, LogFn, MetricInfo, Scale, TrainSettings, TrialResult, TrialSpec
from domains.serve import Export

SEQ_LEN = 64          # tokens per training window (BPTT length)
CHUNK_TOKENS = {"char": 256, "word": 64}  # units per pool chunk: the granularity of subsets
WORD_MIN_COUNT = 3
UNK = "<unk>"


class LSTMLanguageModel(nn.Module):
    """Embedding(V, w) -> LSTM(w, w, layers) -> Linear(w, V).

    Parameters: V*w (embedding) + layers * (8*w*w + 8*w) (LSTM: 4 gates, input and recurrent
    weights, two bias vectors) + w*V + V (output layer).
    """

    def __init__(self, vocab_size: int, width: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.lstm = nn.LSTM(width, width, num_layers=layers, batch_first=True)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: (batch, time) -> logits (batch, time, vocab)
        return self.step(ids)[0]

    def step(self, ids: torch.Tensor, state=None):
        """Logits (batch, time, vocab) and the LSTM's final (h, c), continuing from ``state``:
        generation feeds one token at a time without reading the text again."""
        hidden, state = self.lstm(self.embed(ids), state)
        return self.head(hidden), state


def lstm_lm_params(vocab_size: int, width: int, layers: int) -> int:
    """Exact parameter count of `LSTMLanguageModel` (formula in its docstring)."""
    return vocab_size * width + layers * (8 * width * width + 8 * width) + width * vocab_size + vocab_size


@dataclass
class LMData:
    """Encoded corpus: training pool as equal chunks, validation ids, vocabulary."""

    unit: str
    vocab: list[str]
    pool: torch.Tensor            # (n_chunks, chunk_tokens) int64
    val_ids: torch.Tensor         # (n_val_tokens,) int64
    unigram_entropy_nats: float
    corpus_name: str = ""
    index: dict[str, int] = field(default_factory=dict)

    def chunk_sizes(self) -> np.ndarray:
        return np.full(self.pool.shape[0], self.pool.shape[1], dtype=np.int64)

    def best_guess_error(self) -> float:
        """Unigram entropy of the training pool, in the metric's units."""
        return self.unigram_entropy_nats / (math.log(2) if self.unit == "char" else 1.0)


def _units(text: str, unit: str) -> list[str]:
    return list(text) if unit == "char" else corpora.tokenize_words(text)


def token_ids(tokens: list[str], index: Mapping[str, int]) -> torch.Tensor:
    """Ids of ``tokens`` in the vocabulary ``index``; a token the training pool lacks is ``<unk>`` (0)."""
    return torch.tensor([index.get(t, 0) for t in tokens], dtype=torch.int64)


def encode_corpus(corpus: corpora.Corpus, unit: str, max_val_units: int | None = None) -> LMData:
    """Tokenize, build the vocabulary from the training documents, chunk the pool."""
    train_tokens: list[str] = []
    for doc in corpus.train_docs:
        train_tokens.extend(_units(doc, unit))
        train_tokens.extend(_units("\n\n", unit))
    counts = Counter(train_tokens)
    min_count = 1 if unit == "char" else WORD_MIN_COUNT
    vocab = [UNK] + sorted(t for t, c in counts.items() if c >= min_count)
    index = {t: i for i, t in enumerate(vocab)}
    ids = token_ids(train_tokens, index)
    chunk = CHUNK_TOKENS[unit]
    n_chunks = len(ids) // chunk
    if n_chunks < 2:
        raise DataError(f"training text too short: {len(ids)} {unit}s, need at least {2 * chunk}")
    val_tokens = _units(corpus.validation, unit)
    if max_val_units:
        val_tokens = val_tokens[:max_val_units]
    if len(val_tokens) < SEQ_LEN + 1:
        raise DataError(f"validation text too short: {len(val_tokens)} {unit}s")
    val_ids = token_ids(val_tokens, index)
    freq = np.bincount(ids.numpy(), minlength=len(vocab)).astype(np.float64)
    p = freq[freq > 0] / freq.sum()
    return LMData(
        unit=unit,
        vocab=vocab,
        pool=ids[: n_chunks * chunk].view(n_chunks, chunk),
        val_ids=val_ids,
        unigram_entropy_nats=float(-(p * np.log(p)).sum()),
        corpus_name=corpus.name,
        index=index,
    )


class LMTask:
    """One trial's view: the subset's token stream and the validation stream."""

    def __init__(self, data: LMData, chunk_ids: np.ndarray):
        self.data = data
        self.train_ids = data.pool[torch.as_tensor(np.asarray(chunk_ids), dtype=torch.int64)].reshape(-1)
        if len(self.train_ids) < SEQ_LEN + 2:
            raise DataError(f"subset of {len(self.train_ids)} tokens is shorter than one window ({SEQ_LEN + 1})")

    def epoch_steps(self, batch_size: int) -> float:
        return len(self.train_ids) / (batch_size * SEQ_LEN)

    def sample_batch(self, gen: torch.Generator, batch_size: int, device: str) -> torch.Tensor:
        starts = torch.randint(0, len(self.train_ids) - SEQ_LEN - 1, (batch_size,), generator=gen)
        offsets = torch.arange(SEQ_LEN + 1)
        return self.train_ids[starts[:, None] + offsets].to(device)  # (batch, SEQ_LEN + 1)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        logits = model(batch[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1))

    def evaluate(self, model: nn.Module, device: str) -> tuple[float, float]:
        return evaluate_lm(model, self.data, device)


@torch.no_grad()
def evaluate_lm(model: nn.Module, data: LMData, device: str = "cpu", batch_windows: int = 128) -> tuple[float, float]:
    """Mean validation cross-entropy (nats/token) over non-overlapping windows, and the metric."""
    was_training = model.training
    model.eval()
    ids = data.val_ids
    n_win = (len(ids) - 1) // SEQ_LEN
    x = ids[: n_win * SEQ_LEN].view(n_win, SEQ_LEN)
    y = ids[1 : n_win * SEQ_LEN + 1].view(n_win, SEQ_LEN)
    total, count = 0.0, 0
    for i in range(0, n_win, batch_windows):
        xb, yb = x[i : i + batch_windows].to(device), y[i : i + batch_windows].to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(xb)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), yb.reshape(-1), reduction="sum").item()
        count += yb.numel()
    model.train(was_training)
    nats = total / count
    return nats, nats / math.log(2) if data.unit == "char" else nats


_SCALES = {
    # unit -> budget -> literal numbers. quick must finish the default study in < 10 min on 2 cores.
    "char": {
        "smoke": Scale(2048, 3, TrainSettings(batch_size=16, max_steps=60, max_rounds=3, min_round_steps=20, patience=2),
                       {"width": 16, "layers": 1}, 3e-3, min_width=8, max_width=32, max_val_units=4096),
        # Steps grow with m (max_epochs) so that every best-fit trial ends by early stopping,
        # not by its budget, and the range stops where that still fits in the default study's
        # 10 minutes: a shorter range measured honestly (no compute-limited point).
        "quick": Scale(2048, 7, TrainSettings(batch_size=32, max_steps=2500, max_rounds=60, min_round_steps=25, patience=2,
                                              max_epochs=50, min_steps=600),
                       {"width": 32, "layers": 1}, 8e-3, min_width=16, max_width=384, max_val_units=32768),
        "full": Scale(8192, 10, TrainSettings(batch_size=64, max_steps=20000, max_rounds=200, min_round_steps=100, patience=4),
                      {"width": 64, "layers": 2}, 2e-3, min_width=32, max_width=1024, max_val_units=None),
    },
    "word": {
        "smoke": Scale(1024, 3, TrainSettings(batch_size=16, max_steps=60, max_rounds=3, min_round_steps=20, patience=2),
                       {"width": 16, "layers": 1}, 3e-3, min_width=8, max_width=32, max_val_units=2048),
        "quick": Scale(4096, 8, TrainSettings(batch_size=32, max_steps=400, max_rounds=30, min_round_steps=25, patience=2),
                       {"width": 32, "layers": 1}, 4e-3, min_width=16, max_width=256, max_val_units=16384),
        "full": Scale(8192, 8, TrainSettings(batch_size=64, max_steps=20000, max_rounds=200, min_round_steps=100, patience=4),
                      {"width": 64, "layers": 2}, 2e-3, min_width=32, max_width=1024, max_val_units=None),
    },
}


class LanguageModelDomain:
    """``lm``: LSTM language models on text, units ``char`` (default) and ``word``."""

    name = "lm"
    units = ("char", "word")
    default_data = corpora.SHAKESPEARE
    size_knobs = ("width", "layers")
    grow_knob = "width"

    def metric(self, unit: str) -> MetricInfo:
        self._check_unit(unit)
        if unit == "char":
            return MetricInfo("bits_per_char", "validation cross-entropy in bits per character")
        return MetricInfo("nats_per_word", "validation cross-entropy per word token in nats")

    def scale(self, budget: str, unit: str) -> Scale:
        self._check_unit(unit)
        return _SCALES[unit][budget]

    def load(self, unit: str, data_path: str | None = None, max_val_units: int | None = None,
             pool_size: int | None = None) -> LMData:
        self._check_unit(unit)
        no_pool(self.name, pool_size)
        corpus = corpora.user_text(data_path) if data_path else corpora.shakespeare()
        return encode_corpus(corpus, unit, max_val_units)

    def build_model(self, size: Mapping[str, int], data: LMData) -> LSTMLanguageModel:
        return LSTMLanguageModel(len(data.vocab), int(size["width"]), int(size["layers"]))

    def count_params(self, size: Mapping[str, int], data: LMData) -> int:
        return lstm_lm_params(len(data.vocab), int(size["width"]), int(size["layers"]))

    def train_flops(self, n_params: float, units: float) -> float:
        """6 * N * units: a dense net spends ~2N FLOPs per unit forward and ~4N backward (each character or word is one token)."""
        return 6.0 * n_params * units

    def train(self, spec: TrialSpec, data: LMData, chunk_ids, log: LogFn, device: str = "cpu") -> tuple[TrialResult, nn.Module]:
        def build():
            return self.build_model(spec.size, data), LMTask(data, chunk_ids)

        return train_trial(spec, build, self.count_params(spec.size, data), log, device)

    def evaluate(self, model: nn.Module, data: LMData, device: str = "cpu") -> tuple[float, float]:
        return evaluate_lm(model, data, device)

    def _check_unit(self, unit: str) -> None:
        if unit not in self.units:
            raise ValueError(f"domain lm has no unit {unit!r}; choose one of {', '.join(self.units)}")


MAX_GENERATE = 4096   # units one request may ask to generate


class LMPredictor:
    """A registered language model (`domains.serve`): input column ``text``; output columns

    - ``loss``: cross-entropy of each unit of the text given the units before it (all but the
      first, so a text needs at least 2 units), in the metric's unit: bits per character (unit
      char) or nats per word token (unit word). The LSTM reads the text in one pass; validation
      reads 64-unit windows from a zero state, so a long text's loss is a little lower than the
      metric would give.
    - ``continuation``: with ``params={"generate": N}``, N units *sampled* after the text, one at
      a time from the model's distribution (temperature 1, ``<unk>`` never drawn), with a torch
      generator seeded by ``params["seed"]`` (default 0): the same text, N and seed give the same
      continuation. Characters are joined as they are, words with single spaces. "" for N = 0.
    """

    inputs = ("text",)
    params = {"generate": 0, "seed": 0}

    def __init__(self, model: LSTMLanguageModel, unit: str, vocab: list[str]):
        self.model, self.unit, self.vocab = model, unit, vocab
        self.index = {t: i for i, t in enumerate(vocab)}

    @classmethod
    def export(cls, data: LMData) -> Export:
        # The example: the start of the validation text (200 characters or 40 words), as the model sees it.
        ids = [i for i in data.val_ids[: 200 if data.unit == "char" else 40].tolist() if i != 0]
        example = ("" if data.unit == "char" else " ").join(data.vocab[i] for i in ids)
        loss_unit = "bits per character" if data.unit == "char" else "nats per word token"
        return Export({"loss_unit": loss_unit}, {"text": [example]}, {"vocab.json": json.dumps(data.vocab).encode()})

    @classmethod
    def load(cls, config, files, state) -> "LMPredictor":
        vocab = json.loads(files["vocab.json"])
        model = LSTMLanguageModel(len(vocab), int(config["size"]["width"]), int(config["size"]["layers"]))
        model.load_state_dict(state)
        return cls(model, config["unit"], vocab)

    def predict(self, columns, params) -> dict[str, list]:
        n_new, seed = int(params["generate"]), int(params["seed"])
        if not 0 <= n_new <= MAX_GENERATE:
            raise ValueError(f"generate must be between 0 and {MAX_GENERATE}, got {n_new}")
        losses, continuations = [], []
        for row, text in enumerate(columns["text"]):
            if not isinstance(text, str):
                raise ValueError(f"row {row}: text must be a string, got {type(text).__name__}")
            ids = token_ids(_units(text, self.unit), self.index)
            if len(ids) < 2:
                raise ValueError(f"row {row}: the text has {len(ids)} {self.unit} unit(s); its loss needs at least 2")
            logits, state = self.model.step(ids[None])     # (1, T, V)
            nats = F.cross_entropy(logits[0, :-1].float(), ids[1:]).item()
            losses.append(nats / math.log(2) if self.unit == "char" else nats)
            continuations.append(self._sample(logits[0, -1], state, n_new, seed))
        return {"loss": losses, "continuation": continuations}

    def _sample(self, logits: torch.Tensor, state, n_new: int, seed: int) -> str:
        gen = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(n_new):
            logits = logits.float().clone()
            logits[0] = -math.inf                              # never <unk>
            token = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
            out.append(self.vocab[int(token)])
            logits, state = self.model.step(token.view(1, 1), state)
            logits = logits[0, -1]
        return ("" if self.unit == "char" else " ").join(out)
