"""``nmt``: neural machine translation with attentional LSTM encoder-decoders (Hestness et al. 2017, section 4.1).

Data (unit: target tokens; each pool chunk is one sentence pair, its size the pair's target-token
count, end-of-sentence token included):

- default: English -> Spanish Bible verses shipped with the package
  (``domains/data/bible_en_es.tsv.gz``: King James Version and Reina-Valera 1909, both public
  domain, verse-aligned, the 12,178 verses of at most 20 English words; rebuilt by
  ``domains/data/build_bible_pairs.py``). Whole books (``VALIDATION_BOOKS``) are held out for
  validation, so no training subset shares a verse with it.
- ``--data FILE``: a UTF-8 TSV, one pair per line, ``source<TAB>target``, no header. The last
  ``VAL_FRACTION`` of the lines (at least one) is the validation set; the rest is the pool.
- ``--data DIR`` holding ``train.src`` and ``train.tgt`` (line-aligned: line i of one translates
  line i of the other) and optionally ``valid.src`` / ``valid.tgt``; without the latter the last
  ``VAL_FRACTION`` of the training pairs is held out, as for a TSV.

Blank lines are skipped (in a two-file layout only where both sides are blank).

Tokens: a byte-pair-encoding ``sentencepiece`` model per language (``VOCAB_SIZE`` pieces, a soft
limit for small data), trained in-process, single-threaded and so deterministically, on the
training pool only, once per load: every subset and the validation set share that vocabulary,
so the metric means the same thing at every subset size. Sides longer than ``MAX_TOKENS`` are cut.

Model family: `Seq2SeqAttention`, an LSTM encoder-decoder with Luong et al. (2015) global
attention ("general" score), knobs ``width`` (embedding, hidden and attention size) and
``layers`` (LSTM layers in both encoder and decoder). Fitted metric: validation cross-entropy per
target token in nats (``xent_per_token``), the training loss itself. Logged alongside, not fitted:
corpus BLEU (``sacrebleu``) of greedy translations of the first ``BLEU_PAIRS`` validation pairs,
as ``val_bleu`` per round and ``best_val_bleu``. Best guess: the unigram entropy of the training
pool's target tokens (nats), the cross-entropy of ignoring the source and the context.

Registered models (`TranslationPredictor`, see `domains.serve`) take a column ``source`` and
return its greedy ``translation``; both sentencepiece models travel with them.

Run one trial by hand::

    scal train --domain nmt --subset-size 65536 --width 64
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import sacrebleu
import sentencepiece as spm
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

from domains.common import no_pool, train_trial
from domains.protocol import (
    DataError, LogFn, MetricInfo, Scale, TrainSettings, TrialResult, TrialSpec, read_text,
)
from domains.serve import Export

EMBEDDED = "bible_en_es.tsv.gz"
# Held-out books (489 short verses: narrative, poetry, letters): the validation set.
VALIDATION_BOOKS = ("Ruth", "Ecclesiastes", "Lamentations", "Jonah", "Galatians", "Philippians",
                    "Titus", "James", "II Peter", "I John")
VAL_FRACTION = 0.1      # user data without its own validation files: this tail is held out
VAL_ORDER_SEED = 2017   # validation pairs are shuffled once so that any prefix mixes books
VOCAB_SIZE = 1000       # BPE pieces per language: short sequences at a softmax 2 CPU cores afford
MAX_TOKENS = 128        # per side, end-of-sentence included
BLEU_PAIRS = 100        # greedy-decoded validation pairs scored with BLEU every round
EVAL_BATCH = 256
PAD, UNK, BOS, EOS = 0, 1, 2, 3


class Seq2SeqAttention(nn.Module):
    """LSTM encoder-decoder with global attention (Luong et al. 2015, "general" score, no input feeding).

    encoder: Embedding(Vs, w) -> LSTM(w, w, layers); decoder: Embedding(Vt, w) -> LSTM(w, w, layers)
    started from the encoder's final states; at each target position t the decoder output h_t
    attends over the encoder outputs h_s with score h_t . (W_a h_s), context c_t = sum_s a_ts h_s,
    attentional state ~h_t = tanh(W_c [c_t; h_t]), logits = W_o ~h_t + b_o.

    Parameters: (Vs + Vt) * w (embeddings) + 2 * layers * (8*w*w + 8*w) (encoder and decoder LSTMs:
    4 gates, input and recurrent weights, two bias vectors) + w*w (W_a) + 2*w*w (W_c; neither has
    a bias) + w*Vt + Vt (output layer).
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, width: int, layers: int):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, width, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, width, padding_idx=PAD)
        self.encoder = nn.LSTM(width, width, num_layers=layers, batch_first=True)
        self.decoder = nn.LSTM(width, width, num_layers=layers, batch_first=True)
        self.score = nn.Linear(width, width, bias=False)          # W_a
        self.combine = nn.Linear(2 * width, width, bias=False)    # W_c
        self.head = nn.Linear(width, tgt_vocab)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor):
        """(encoder outputs (B, S, w), padding mask (B, S), final (h, c)); padding never enters the states."""
        packed = pack_padded_sequence(self.src_embed(src), src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.encoder(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return out, src == PAD, state

    def attend(self, dec_out: torch.Tensor, enc_out: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """Attentional states ~h (B, T, w) from decoder outputs (B, T, w) over encoder outputs (B, S, w)."""
        scores = torch.bmm(self.score(dec_out), enc_out.transpose(1, 2))       # (B, T, S)
        weights = scores.masked_fill(pad_mask[:, None, :], float("-inf")).softmax(-1)
        context = torch.bmm(weights, enc_out)
        return torch.tanh(self.combine(torch.cat([context, dec_out], -1)))

    def states(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Attentional states (B, T, w) under teacher forcing; ``head`` turns them into logits."""
        enc_out, pad_mask, state = self.encode(src, src_len)
        dec_out, _ = self.decoder(self.tgt_embed(tgt_in), state)
        return self.attend(dec_out, enc_out, pad_mask)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, Vt) of every target position."""
        return self.head(self.states(src, src_len, tgt_in))

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, src_len: torch.Tensor, max_len: int) -> list[list[int]]:
        """Greedy translations (target ids without BOS/EOS), one token per step for the whole batch."""
        enc_out, pad_mask, state = self.encode(src, src_len)
        token = torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=src.device)
        steps, done = [], torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            dec_out, state = self.decoder(self.tgt_embed(token), state)
            token = self.head(self.attend(dec_out, enc_out, pad_mask)).argmax(-1)   # (B, 1)
            steps.append(token[:, 0])
            done |= token[:, 0] == EOS
            if bool(done.all()):
                break
        out = []
        for row in torch.stack(steps, 1).tolist():
            out.append(row[: row.index(EOS)] if EOS in row else row)
        return out


def seq2seq_params(src_vocab: int, tgt_vocab: int, width: int, layers: int) -> int:
    """Exact parameter count of `Seq2SeqAttention` (formula in its docstring)."""
    lstm = layers * (8 * width * width + 8 * width)
    return (src_vocab + tgt_vocab) * width + 2 * lstm + 3 * width * width + width * tgt_vocab + tgt_vocab


@dataclass
class Side:
    """One language's token ids of many sentences, stored flat: sentence i is ids[offsets[i]:offsets[i+1]]."""

    ids: torch.Tensor       # (total tokens,) int32
    offsets: np.ndarray     # (n + 1,) int64

    @classmethod
    def of(cls, sentences: Sequence[Sequence[int]]) -> "Side":
        lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        flat = [t for s in sentences for t in s]
        return cls(torch.tensor(flat, dtype=torch.int32), np.concatenate([[0], np.cumsum(lengths)]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def batch(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(padded ids (B, max length) int64, lengths (B,)) of the given sentences."""
        seqs = [self.ids[self.offsets[i]:self.offsets[i + 1]].long() for i in rows]
        return pad_sequence(seqs, batch_first=True, padding_value=PAD), torch.tensor([len(s) for s in seqs])


@dataclass
class NMTData:
    """Encoded sentence pairs: the training pool, the validation pairs, both tokenizers."""

    unit: str
    src_train: Side = field(repr=False)
    tgt_train: Side = field(repr=False)  # each sentence ends with EOS; BOS is added when batching
    src_val: Side = field(repr=False)
    tgt_val: Side = field(repr=False)
    bleu_refs: list[str] = field(repr=False)  # raw target text of the first validation pairs, BLEU's references
    src_vocab: int
    tgt_vocab: int
    tgt_tokenizer: bytes = field(repr=False)  # the serialized sentencepiece model (picklable, unlike the processor)
    unigram_entropy_nats: float
    src_tokenizer: bytes = field(default=b"", repr=False)   # the source side's, for registered models
    _sp: spm.SentencePieceProcessor | None = field(default=None, repr=False, compare=False)

    def chunk_sizes(self) -> np.ndarray:
        return self.tgt_train.lengths()

    def best_guess_error(self) -> float:
        return self.unigram_entropy_nats

    def decode(self, ids: list[list[int]]) -> list[str]:
        if self._sp is None:
            self._sp = spm.SentencePieceProcessor(model_proto=self.tgt_tokenizer)
        return self._sp.decode(ids)

    def __getstate__(self):
        return {**self.__dict__, "_sp": None}


# ---- reading pairs ---------------------------------------------------------------------------

Pairs = list[tuple[str, str]]


def bible_verses() -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(training, validation) verses of the embedded Bible as (key, English, Spanish), split by book."""
    train, val = [], []
    with resources.files("domains.data").joinpath(EMBEDDED).open("rb") as f:
        lines = gzip.decompress(f.read()).decode("utf-8").splitlines()[1:]     # skip the header
    for line in lines:
        key, en, es = line.split("\t")
        book = key.rsplit(" ", 1)[0]          # "I John 2:1" -> "I John"
        (val if book in VALIDATION_BOOKS else train).append((key, en, es))
    return train, val


def _bible_pairs() -> tuple[Pairs, Pairs]:
    train, val = bible_verses()
    return [(en, es) for _, en, es in train], [(en, es) for _, en, es in val]


def _read_lines(path: Path) -> list[str]:
    return read_text(path, str(path)).splitlines()


def read_tsv(path: Path) -> Pairs:
    """``source<TAB>target`` per line; blank lines skipped; anything else is a DataError naming the line."""
    pairs = []
    for number, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(f"--data {path}: line {number} is not 'source<TAB>target' "
                            f"({len(fields)} tab-separated field(s))")
        pairs.append((fields[0].strip(), fields[1].strip()))
    return pairs


def read_parallel(src: Path, tgt: Path) -> Pairs:
    """Two line-aligned files; their line counts must agree."""
    for p in (src, tgt):
        if not p.is_file():
            raise DataError(f"--data {src.parent}: missing {p.name} (expects train.src and train.tgt, line-aligned)")
    s, t = _read_lines(src), _read_lines(tgt)
    if len(s) != len(t):
        raise DataError(f"--data {src.parent}: {src.name} has {len(s)} lines but {tgt.name} has {len(t)}; "
                        "they must be line-aligned")
    pairs = []
    for number, (a, b) in enumerate(zip(s, t), 1):
        if not a.strip() and not b.strip():
            continue
        if not a.strip() or not b.strip():
            raise DataError(f"--data {src.parent}: line {number} is blank on one side only")
        pairs.append((a.strip(), b.strip()))
    return pairs


def split_tail(pairs: Pairs, what: str) -> tuple[Pairs, Pairs]:
    """Hold out the last ``VAL_FRACTION`` of the pairs (at least one) for validation."""
    if len(pairs) < 10:
        raise DataError(f"--data {what}: {len(pairs)} sentence pairs; need at least 10")
    n_val = max(1, int(len(pairs) * VAL_FRACTION))
    return pairs[:-n_val], pairs[-n_val:]


def user_pairs(data_path: str) -> tuple[Pairs, Pairs]:
    root = Path(data_path)
    if root.is_file():
        return split_tail(read_tsv(root), data_path)
    if not root.is_dir():
        raise DataError(f"--data {data_path}: no such file or directory "
                        "(expects a source<TAB>target TSV, or a folder with train.src and train.tgt)")
    train = read_parallel(root / "train.src", root / "train.tgt")
    if (root / "valid.src").exists() or (root / "valid.tgt").exists():
        val = read_parallel(root / "valid.src", root / "valid.tgt")
        if not train or not val:
            raise DataError(f"--data {data_path}: train or valid files hold no sentence pairs")
        return train, val
    return split_tail(train, data_path)


# ---- tokenizing ------------------------------------------------------------------------------

def train_tokenizer(sentences: list[str]) -> bytes:
    """A BPE sentencepiece model (serialized) of the given sentences; single thread: deterministic."""
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, model_type="bpe", vocab_size=VOCAB_SIZE,
            hard_vocab_limit=False, character_coverage=1.0, num_threads=1, minloglevel=2,
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS)
    except RuntimeError as exc:
        raise DataError(f"training data: the tokenizer could not be trained ({str(exc).splitlines()[0]})") from None
    return model.getvalue()


def _encode(sp: spm.SentencePieceProcessor, sentences: list[str]) -> list[list[int]]:
    return [ids[: MAX_TOKENS - 1] + [EOS] for ids in sp.encode(sentences)]


def _entropy_nats(side: Side, vocab: int) -> float:
    freq = np.bincount(side.ids.numpy(), minlength=vocab).astype(np.float64)
    p = freq[freq > 0] / freq.sum()
    return float(-(p * np.log(p)).sum())


def encode_pairs(train: Pairs, val: Pairs, max_val_units: int | None = None) -> NMTData:
    """Train both tokenizers on the training pool, encode, shuffle and cap the validation pairs."""
    if not train or not val:
        raise DataError("translation data: the training or validation set is empty")
    src_model = train_tokenizer([s for s, _ in train])
    tgt_model = train_tokenizer([t for _, t in train])
    src_sp = spm.SentencePieceProcessor(model_proto=src_model)
    tgt_sp = spm.SentencePieceProcessor(model_proto=tgt_model)
    order = np.random.default_rng(VAL_ORDER_SEED).permutation(len(val))
    val = [val[i] for i in order]
    tgt_val_ids = _encode(tgt_sp, [t for _, t in val])
    if max_val_units:
        kept = np.searchsorted(np.cumsum([len(t) for t in tgt_val_ids]), max_val_units, side="right")
        val, tgt_val_ids = val[:max(1, kept)], tgt_val_ids[:max(1, kept)]
    tgt_train = Side.of(_encode(tgt_sp, [t for _, t in train]))
    return NMTData(
        unit="tokens",
        src_train=Side.of(_encode(src_sp, [s for s, _ in train])),
        tgt_train=tgt_train,
        src_val=Side.of(_encode(src_sp, [s for s, _ in val])),
        tgt_val=Side.of(tgt_val_ids),
        bleu_refs=[t for _, t in val[:BLEU_PAIRS]],
        src_vocab=src_sp.get_piece_size(),
        tgt_vocab=tgt_sp.get_piece_size(),
        tgt_tokenizer=tgt_model,
        unigram_entropy_nats=_entropy_nats(tgt_train, tgt_sp.get_piece_size()),
        src_tokenizer=src_model,
    )


def load_pairs(data_path: str | None = None, max_val_units: int | None = None) -> NMTData:
    train, val = _bible_pairs() if data_path is None else user_pairs(data_path)
    return encode_pairs(train, val, max_val_units)


# ---- training and evaluation -----------------------------------------------------------------

def _teacher_forcing(tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(decoder input BOS y1 .. yn, expected output y1 .. yn EOS) from padded targets y1 .. yn EOS."""
    bos = torch.full((tgt.shape[0], 1), BOS, dtype=tgt.dtype)
    tgt_in = torch.cat([bos, tgt[:, :-1]], 1)
    return tgt_in.masked_fill(tgt_in == EOS, PAD), tgt       # EOS is never an input


def token_xent(model: Seq2SeqAttention, batch, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the real (non-padding) target tokens of a batch. The output layer, the
    costliest part at these sizes, runs on those tokens only, not on the padding."""
    src, src_len, tgt_in, tgt_out = batch
    keep = tgt_out != PAD
    logits = model.head(model.states(src, src_len, tgt_in)[keep])
    return F.cross_entropy(logits.float(), tgt_out[keep], reduction=reduction)


class NMTTask:
    """One trial's training pairs; minibatches of pairs drawn uniformly with replacement."""

    def __init__(self, data: NMTData, chunk_ids):
        self.data = data
        self.rows = np.asarray(chunk_ids, dtype=np.int64)

    def epoch_steps(self, batch_size: int) -> float:
        return len(self.rows) / batch_size

    def sample_batch(self, gen: torch.Generator, batch_size: int, device: str):
        pick = self.rows[torch.randint(0, len(self.rows), (batch_size,), generator=gen).numpy()]
        src, src_len = self.data.src_train.batch(pick)
        tgt_in, tgt_out = _teacher_forcing(self.data.tgt_train.batch(pick)[0])
        return src.to(device), src_len, tgt_in.to(device), tgt_out.to(device)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        return token_xent(model, batch)

    def evaluate(self, model: nn.Module, device: str) -> tuple[float, float, dict[str, float]]:
        xent = validation_xent(model, self.data, device)
        return xent, xent, {"bleu": validation_bleu(model, self.data, device)}


@torch.no_grad()
def validation_xent(model: nn.Module, data: NMTData, device: str = "cpu") -> float:
    """Cross-entropy per target token (nats) over all validation pairs, teacher-forced."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    order = np.argsort(data.tgt_val.lengths(), kind="stable")     # similar lengths: less padding
    for s in range(0, len(order), EVAL_BATCH):
        rows = order[s:s + EVAL_BATCH]
        src, src_len = data.src_val.batch(rows)
        tgt_in, tgt_out = _teacher_forcing(data.tgt_val.batch(rows)[0])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            total += token_xent(model, (src.to(device), src_len, tgt_in.to(device), tgt_out.to(device)), "sum").item()
        count += int((tgt_out != PAD).sum())
    model.train(was_training)
    return total / count


def translate(model: Seq2SeqAttention, src: torch.Tensor, src_len: torch.Tensor, device: str = "cpu") -> list[list[int]]:
    """Greedy target ids of padded source ids; at most 2 x the longest source + 10 tokens (and MAX_TOKENS)."""
    return model.greedy(src.to(device), src_len, min(MAX_TOKENS, int(2 * src_len.max()) + 10))


@torch.no_grad()
def validation_bleu(model: nn.Module, data: NMTData, device: str = "cpu") -> float:
    """Corpus BLEU (sacrebleu, 13a tokenization) of greedy translations of the first validation pairs."""
    was_training = model.training
    model.eval()
    rows = np.arange(len(data.bleu_refs))
    hyps = data.decode(translate(model, *data.src_val.batch(rows), device))
    model.train(was_training)
    return float(sacrebleu.corpus_bleu(hyps, [data.bleu_refs]).score)


_SCALES = {
    # smoke: tests only; a tiny study of three subsets in seconds.
    "smoke": Scale(256, 3, TrainSettings(batch_size=16, max_steps=30, max_rounds=3, min_round_steps=10, patience=2),
                   {"width": 16, "layers": 1}, 3e-3, min_width=8, max_width=32, max_val_units=600),
    # quick: 1,024 -> 131,072 target tokens (about 37 to 4,700 verses, 2.1 orders of magnitude); the
    # smallest three subsets sit near the unigram level (the small-data region). 800 steps of 32
    # pairs (5.5 epochs of the largest subset): 400 left the largest subset worse than the one
    # before it (2.7 epochs, undertrained). Widths 32-128 and one layer keep the study near 15
    # minutes on 2 cores; width 128 is where the largest subset starts to overfit.
    "quick": Scale(1024, 8, TrainSettings(batch_size=32, max_steps=800, max_rounds=30, min_round_steps=40, patience=2),
                   {"width": 64, "layers": 1}, 3e-3, min_width=32, max_width=128, max_val_units=8000),
    # full: 2,048 -> 262,144 tokens, 80% of the embedded pool (327k target tokens); for larger
    # user data raise --n-subsets.
    "full": Scale(2048, 8, TrainSettings(batch_size=64, max_steps=20000, max_rounds=100, min_round_steps=100, patience=4),
                  {"width": 256, "layers": 2}, 1e-3, min_width=64, max_width=1024, max_val_units=None),
}


class TranslationDomain:
    """``nmt``: attentional LSTM encoder-decoders on English -> Spanish Bible verses (or the user's pairs)."""

    name = "nmt"
    units = ("tokens",)
    default_data = EMBEDDED
    size_knobs = ("width", "layers")
    grow_knob = "width"

    def metric(self, unit: str) -> MetricInfo:
        self._check_unit(unit)
        return MetricInfo("xent_per_token", "validation cross-entropy per target token in nats")

    def scale(self, budget: str, unit: str) -> Scale:
        self._check_unit(unit)
        return _SCALES[budget]

    def load(self, unit: str, data_path: str | None = None, max_val_units: int | None = None,
             pool_size: int | None = None) -> NMTData:
        self._check_unit(unit)
        no_pool(self.name, pool_size)
        return load_pairs(data_path, max_val_units)

    def build_model(self, size: Mapping[str, int], data: NMTData) -> Seq2SeqAttention:
        return Seq2SeqAttention(data.src_vocab, data.tgt_vocab, int(size["width"]), int(size["layers"]))

    def count_params(self, size: Mapping[str, int], data: NMTData) -> int:
        return seq2seq_params(data.src_vocab, data.tgt_vocab, int(size["width"]), int(size["layers"]))

    def train_flops(self, n_params: float, units: float) -> float:
        """6 * N * units (units: target tokens): the dense-network estimate. It leaves out the source
        side's encoder passes (about as many tokens again, through the encoder's share of N) and the
        attention (a little: about 4 * w FLOPs per source-target position pair), so it undercounts."""
        return 6.0 * n_params * units

    def train(self, spec: TrialSpec, data: NMTData, chunk_ids, log: LogFn,
              device: str = "cpu") -> tuple[TrialResult, nn.Module]:
        def build():
            return self.build_model(spec.size, data), NMTTask(data, chunk_ids)

        return train_trial(spec, build, self.count_params(spec.size, data), log, device)

    def evaluate(self, model: nn.Module, data: NMTData, device: str = "cpu") -> tuple[float, float]:
        xent = validation_xent(model, data, device)
        return xent, xent

    def _check_unit(self, unit: str) -> None:
        if unit not in self.units:
            raise ValueError(f"domain nmt has no unit {unit!r}; its unit is 'tokens'")


class TranslationPredictor:
    """A registered translation model (`domains.serve`): input column ``source`` (sentences in
    the source language); output column ``translation``, the greedy decode (`translate`). The
    sentences are tokenized with the source sentencepiece model of training and cut at
    ``MAX_TOKENS`` as in training (`_encode`); the output is decoded with the target one."""

    inputs = ("source",)
    params: dict[str, int] = {}

    def __init__(self, model: Seq2SeqAttention, src_model: bytes, tgt_model: bytes):
        self.model = model
        self.src_sp = spm.SentencePieceProcessor(model_proto=src_model)
        self.tgt_sp = spm.SentencePieceProcessor(model_proto=tgt_model)

    @classmethod
    def export(cls, data: NMTData) -> Export:
        if not data.src_tokenizer:
            raise ValueError("translation data without its source tokenizer (made by an older scal); load it again")
        src_sp = spm.SentencePieceProcessor(model_proto=data.src_tokenizer)
        first = data.src_val.ids[data.src_val.offsets[0]:data.src_val.offsets[1] - 1].tolist()   # without EOS
        return Export({}, {"source": [src_sp.decode(first)]},
                      {"source.model": data.src_tokenizer, "target.model": data.tgt_tokenizer})

    @classmethod
    def load(cls, config, files, state) -> "TranslationPredictor":
        out = cls(None, files["source.model"], files["target.model"])
        out.model = Seq2SeqAttention(out.src_sp.get_piece_size(), out.tgt_sp.get_piece_size(),
                                     int(config["size"]["width"]), int(config["size"]["layers"]))
        out.model.load_state_dict(state)
        return out

    def predict(self, columns, params) -> dict[str, list]:
        sources = columns["source"]
        for row, text in enumerate(sources):
            if not isinstance(text, str):
                raise ValueError(f"row {row}: source must be a string, got {type(text).__name__}")
        out: list[str] = []
        for start in range(0, len(sources), EVAL_BATCH):
            side = Side.of(_encode(self.src_sp, sources[start:start + EVAL_BATCH]))
            out += self.tgt_sp.decode(translate(self.model, *side.batch(range(len(side)))))
        return {"translation": out}
