"""``speech_attn``: attention encoder-decoder recognisers, character error rate.

The same data as ``speech`` (`domains.speech_data`: by default **synthetic** spoken digit
strings, cleaner learning curves than recorded speech; ``--data`` for a LibriSpeech-style folder
or a manifest) and the same fitted metric (CER, with WER logged as ``best_val_wer``), with the
other model family of the paper's speech study: an encoder-decoder with global attention.

Model family (`AttentionSpeech`): the ``speech`` encoder (strided convolution + ``layers``
bidirectional GRU layers of ``width`` per direction) with stride 6 instead of 3 (60 ms per
step: attention learns its alignment over half as many steps, and each step costs about 40%
less; Listen, Attend and Spell shortens its encoder 8x for the same reason), and a one-layer
GRU decoder of ``width`` units with Luong's global "general" attention over the encoder states and input feeding. Trained
with teacher forcing; loss: cross-entropy per output character (end-of-sentence included);
decoding: greedy, until end-of-sentence or a length cap set by the utterance's duration (`decode_limits`).
Best guess: 1.0.

Registered models (`AttentionPredictor`, see `domains.serve`) take a column ``audio`` of float32
16 kHz waveforms and return each one's greedy ``transcript``.

Run one trial by hand::

    scal train --domain speech_attn --subset-size 1024 --width 64
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from domains.protocol import MetricInfo, Scale
from domains.serve import Export
from domains.speech import EVAL_BATCH, CTCPredictor, Encoder, SpeechDomain, encoder_params, encoder_steps
from domains.speech_data import SpeechData, SpeechTask, error_rates, targets, val_batches

EOS = 0          # id 0 doubles as start symbol and end of sentence
ATTN_STRIDE = 6  # feature frames (10 ms) per encoder step


class AttentionSpeech(nn.Module):
    """`Encoder` (mels -> 2w per step); Embedding(tokens, w); GRUCell(2w -> w) fed [embedding;
    previous attentional vector]; score(h, e) = h . (W_a e) with W_a: 2w -> w (no bias); attentional
    vector tanh(W_c [context; h]) with W_c: 3w -> w; Linear(w, tokens).

    Parameters: encoder_params(mels, w, layers) + tokens*w (embedding) + 9w^2 + 6w (GRU cell:
    3w*2w input + 3w*w recurrent weights + two 3w biases) + 2w^2 (W_a) + 3w^2 + w (W_c)
    + w*tokens + tokens (output).
    """

    def __init__(self, n_mels: int, width: int, layers: int, n_tokens: int):
        super().__init__()
        self.width = width
        self.encoder = Encoder(n_mels, width, layers, stride=ATTN_STRIDE)
        self.embed = nn.Embedding(n_tokens, width)
        self.cell = nn.GRUCell(2 * width, width)
        self.attn = nn.Linear(2 * width, width, bias=False)
        self.combine = nn.Linear(3 * width, width)
        self.head = nn.Linear(width, n_tokens)

    def encode(self, x: torch.Tensor, frames: torch.Tensor):
        enc, steps = self.encoder(x, frames)
        pad = torch.arange(enc.shape[1], device=enc.device)[None, :] >= steps[:, None]
        return enc, self.attn(enc), pad

    def step(self, token, state, feed, enc, keys, pad):
        """One decoder step: (logits, new state, attentional vector)."""
        state = self.cell(torch.cat([self.embed(token), feed], dim=-1), state)
        scores = torch.bmm(keys, state.unsqueeze(2)).squeeze(2).masked_fill(pad, float("-inf"))
        context = torch.bmm(torch.softmax(scores, dim=-1).unsqueeze(1), enc).squeeze(1)
        feed = torch.tanh(self.combine(torch.cat([context, state], dim=-1)))
        return self.head(feed), state, feed

    def forward(self, x: torch.Tensor, frames: torch.Tensor, y_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (batch, len(y_in), tokens) for decoder inputs ``y_in``."""
        enc, keys, pad = self.encode(x, frames)
        state = feed = enc.new_zeros(x.shape[0], self.width)
        out = []
        for t in range(y_in.shape[1]):
            logits, state, feed = self.step(y_in[:, t], state, feed, enc, keys, pad)
            out.append(logits)
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def greedy(self, x: torch.Tensor, frames: torch.Tensor, max_len: torch.Tensor) -> list[list[int]]:
        """Greedy transcripts; utterance b stops at end-of-sentence or after ``max_len[b]`` characters."""
        enc, keys, pad = self.encode(x, frames)
        batch = x.shape[0]
        state = feed = enc.new_zeros(batch, self.width)
        token = torch.full((batch,), EOS, dtype=torch.int64, device=x.device)
        done = torch.zeros(batch, dtype=torch.bool, device=x.device)
        out = []
        limit = max_len.to(x.device)
        for t in range(int(limit.max())):
            logits, state, feed = self.step(token, state, feed, enc, keys, pad)
            token = logits.argmax(-1)
            out.append(token)
            done |= (token == EOS) | (limit <= t + 1)
            if bool(done.all()):
                break
        seqs = torch.stack(out, dim=1).cpu().tolist()
        seqs = [s[:n] for s, n in zip(seqs, max_len.tolist())]
        return [s[:s.index(EOS)] if EOS in s else s for s in seqs]


def attention_params(n_mels: int, width: int, layers: int, n_tokens: int) -> int:
    """Exact parameter count of `AttentionSpeech` (formula in its docstring)."""
    w = width
    return (encoder_params(n_mels, w, layers) + n_tokens * w + 9 * w * w + 6 * w + 2 * w * w + 3 * w * w + w
            + w * n_tokens + n_tokens)


def teacher_forced_batch(y: torch.Tensor, y_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(decoder inputs [EOS, y...], targets [y..., EOS], mask of real target positions)."""
    batch = y.shape[0]
    y_in = torch.cat([torch.full((batch, 1), EOS, dtype=y.dtype, device=y.device), y], dim=1)
    y_out = torch.cat([y, torch.zeros((batch, 1), dtype=y.dtype, device=y.device)], dim=1)
    y_out[torch.arange(batch), y_len.to(y.device)] = EOS
    mask = torch.arange(y_out.shape[1], device=y.device)[None, :] <= y_len.to(y.device)[:, None]
    return y_in, y_out, mask


def ce_sum(model: AttentionSpeech, x, x_len, y, y_len) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy in nats over the real target positions, their number)."""
    y_in, y_out, mask = teacher_forced_batch(y, y_len)
    logits = model(x, x_len.to(x.device), y_in).float()
    ce = F.cross_entropy(logits.transpose(1, 2), y_out, reduction="none")
    return (ce * mask).sum(), int(mask.sum())


class AttentionTask(SpeechTask):
    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        total, n = ce_sum(model, *batch)
        return total / max(1, n)

    def evaluate(self, model: nn.Module, device: str):
        return evaluate_attention(model, self.data, device)


def chars_per_step(data: SpeechData) -> float:
    """The most characters per encoder step among the training utterances (validation unseen)."""
    steps = encoder_steps(np.diff(data.train_offsets), ATTN_STRIDE)
    chars = np.array([len(t) for t in data.train_texts])   # the vocabulary is these texts' characters
    return float((chars / np.maximum(steps, 1)).max())


def longest_transcript(data: SpeechData) -> int:
    """The most characters a greedy transcript may have anywhere: 1.5x the longest training transcript + 5."""
    return int(1.5 * max(len(t) for t in data.train_texts)) + 5


def decode_limits(frames: torch.Tensor, rate: float, longest: int) -> torch.Tensor:
    """Characters a greedy transcript may have: ceil(1.25 * rate * steps) + 2 for ``steps`` encoder
    steps, ``rate`` from `chars_per_step`, and never more than ``longest`` (1.5x the longest
    training transcript + 5). A decoder that misses end-of-sentence repeats its last
    words until the cap (seen in training runs), so a cap set by the utterance's own duration (like
    ESPnet's maxlenratio) keeps one such loop from costing a long transcript's worth of errors; the
    25% margin and the +2 leave every transcript as long as the training data's fastest speech."""
    by_duration = torch.ceil(1.25 * rate * encoder_steps(frames, ATTN_STRIDE).double()).long() + 2
    return by_duration.clamp_max(longest)


@torch.no_grad()
def evaluate_attention(model: nn.Module, data: SpeechData, device: str = "cpu") -> tuple[float, float, dict[str, float]]:
    """(cross-entropy per character, CER, {"wer": WER}) on the validation utterances."""
    was_training = model.training
    model.eval()
    loss, n, refs, hyps = 0.0, 0, [], []
    rate, longest = chars_per_step(data), longest_transcript(data)
    for _, x, x_len, texts in val_batches(data, EVAL_BATCH):
        y, y_len = targets(data, texts)
        x = x.to(device)
        total, count = ce_sum(model, x, x_len, y.to(device), y_len)
        loss, n = loss + total.item(), n + count
        refs += texts
        hyps += [data.decode(ids) for ids in model.greedy(x, x_len.to(device), decode_limits(x_len, rate, longest))]
    model.train(was_training)
    cer, wer = error_rates(refs, hyps)
    return loss / max(1, n), cer, {"wer": wer}


class SpeechAttentionDomain(SpeechDomain):
    """``speech_attn``: attention encoder-decoders (conv + BiGRU encoder, GRU decoder); CER."""

    name = "speech_attn"
    size_knobs = ("width", "layers")   # width: units of every GRU (per direction); layers: encoder BiGRU layers
    grow_knob = "width"
    # On 1.2 s digit strings the encoder runs 20 steps of 60 ms and the decoder about 22
    # (characters + end of sentence): each weight is used about 22 times per utterance.
    steps_per_utterance = 22

    def metric(self, unit: str) -> MetricInfo:
        self._check_unit(unit)
        return MetricInfo("cer", "character error rate on the validation utterances (edit distance / reference characters)")

    def scale(self, budget: str, unit: str) -> Scale:
        """``speech``'s budgets, with more steps at quick: the teacher-forced loss falls as fast as
        CTC's, but greedy decoding needs the end of sentence, which the decoder learns late. At
        m = 1,024 and width 64, 300 steps reach 0.25 nats per character and yet CER 2.0 (it
        repeats digits until the length cap); 640 steps reach CER 0.17 (measured on 2 threads)."""
        s = super().scale(budget, unit)
        return replace(s, train=replace(s.train, max_steps=800)) if budget == "quick" else s

    def build_model(self, size: Mapping[str, int], data: SpeechData) -> nn.Module:
        return AttentionSpeech(data.n_mels, int(size["width"]), int(size["layers"]), data.n_tokens)

    def count_params(self, size: Mapping[str, int], data: SpeechData) -> int:
        return attention_params(data.n_mels, int(size["width"]), int(size["layers"]), data.n_tokens)

    def make_task(self, data: SpeechData, chunk_ids) -> SpeechTask:
        return AttentionTask(data, chunk_ids)


class AttentionPredictor(CTCPredictor):
    """A registered attention recogniser (`domains.serve`): `CTCPredictor`'s input, features and
    output, decoded greedily by the attention decoder with `decode_limits`' length caps (their
    rate and longest transcript are the training data's, stored with the model)."""

    @classmethod
    def export(cls, data: SpeechData) -> Export:
        out = super().export(data)
        settings = {**out.settings, "chars_per_step": chars_per_step(data), "longest": longest_transcript(data)}
        return Export(settings, out.example, out.files)

    @classmethod
    def build(cls, settings: dict, size: Mapping[str, int]) -> nn.Module:
        return AttentionSpeech(settings["n_mels"], int(size["width"]), int(size["layers"]), len(settings["vocab"]) + 1)

    def decode(self, x: torch.Tensor, frames: torch.Tensor) -> list[list[int]]:
        return self.model.greedy(x, frames, decode_limits(frames, self.s["chars_per_step"], self.s["longest"]))
