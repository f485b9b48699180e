"""``speech``: Deep Speech 2 style recognition with CTC, character error rate (Hestness et al. 2017, section 4.4).

Data (unit: utterances; each pool chunk is one utterance): see `domains.speech_data`. The default
is **synthetic speech**: spoken digit strings made in-process with eSpeak NG from many voices,
accents, rates and pitches, validated on held-out voices; its learning curves are cleaner than
those of recorded speech. ``--data`` takes a LibriSpeech-style folder or a .tsv/.csv manifest.

Model family (`DeepSpeech`): a 1-D convolution over time with stride 3 (the front end of Deep
Speech 2, there 2-D), ``layers`` bidirectional GRU layers of ``width`` units per direction, and a
linear layer to the characters plus the CTC blank. Loss: CTC (``torch.nn.functional.ctc_loss``)
per reference character; decoding: greedy (best path, repeats merged, blanks dropped).
Fitted metric: character error rate (edit distance / reference characters over the validation
set); word error rate is logged alongside as ``val_wer`` / ``best_val_wer``. Best guess: 1.0 (an
empty transcript deletes every character).

Registered models (`CTCPredictor`, see `domains.serve`) take a column ``audio`` of float32
16 kHz waveforms and return each one's greedy ``transcript``.

Run one trial by hand::

    scal train --domain speech --subset-size 1024 --width 64
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from domains.common import train_trial
from domains.protocol import LogFn, MetricInfo, Scale, TrainSettings, TrialResult, TrialSpec
from domains.serve import Export
from domains.speech_data import (
    SAMPLE_RATE_HZ, WINDOW_SAMPLES, SpeechData, SpeechTask, decode_ids, error_rates, featurise_many, gather,
    load_speech, normalise, val_batches,
)

CONV_KERNEL = 11               # frames (110 ms) seen by one convolution output
CONV_STRIDE = 3                # 30 ms per recurrent step: still >= 1.5 steps per character at 240 words/min
EVAL_BATCH = 64
# Encoder steps per utterance for the FLOP estimate: a 2-6 digit string lasts about 1.2 s, 40
# recurrent steps of 30 ms.
STEPS_PER_UTTERANCE = 40


class Encoder(nn.Module):
    """Conv1d(mels -> w, kernel 11, stride ``stride`` (3 here, 6 in ``speech_attn``)) + ReLU, then
    a ``layers``-deep bidirectional GRU of w units per direction; output (batch, steps, 2w) and
    the valid steps per utterance.

    Parameters: 11*mels*w + w (convolution), 12w^2 + 12w (first BiGRU layer: 2 directions x
    (3w*w input + 3w*w recurrent weights + 6w biases)), 18w^2 + 12w per further layer (input 2w).
    """

    def __init__(self, n_mels: int, width: int, layers: int, stride: int = CONV_STRIDE):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(n_mels, width, CONV_KERNEL, stride=stride, padding=CONV_KERNEL // 2)
        self.rnn = nn.GRU(width, width, num_layers=layers, bidirectional=True, batch_first=True)

    def out_lengths(self, frames: torch.Tensor) -> torch.Tensor:
        """Steps after the strided convolution: floor((frames + 2*pad - kernel) / stride) + 1."""
        return encoder_steps(frames, self.stride)

    def forward(self, x: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        steps = self.out_lengths(frames)
        # Packing keeps padding out of the backward direction's state.
        packed = pack_padded_sequence(h, steps.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
        return out, steps


def encoder_steps(frames, stride: int = CONV_STRIDE):
    """Recurrent steps for ``frames`` feature frames (tensor or array): floor((frames + 2*5 - 11) / stride) + 1."""
    return (frames + 2 * (CONV_KERNEL // 2) - CONV_KERNEL) // stride + 1


def encoder_params(n_mels: int, width: int, layers: int) -> int:
    """Exact parameter count of `Encoder` (formula in its docstring)."""
    w = width
    return CONV_KERNEL * n_mels * w + w + (12 * w * w + 12 * w) + (layers - 1) * (18 * w * w + 12 * w)


class DeepSpeech(nn.Module):
    """`Encoder` then Linear(2w, tokens); tokens = characters + the CTC blank (id 0).

    Parameters: encoder_params(mels, w, layers) + 2w*tokens + tokens.
    """

    def __init__(self, n_mels: int, width: int, layers: int, n_tokens: int):
        super().__init__()
        self.encoder = Encoder(n_mels, width, layers)
        self.head = nn.Linear(2 * width, n_tokens)

    def forward(self, x: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, steps = self.encoder(x, frames)
        return self.head(out), steps


def deepspeech_params(n_mels: int, width: int, layers: int, n_tokens: int) -> int:
    """Exact parameter count of `DeepSpeech` (formula in its docstring)."""
    return encoder_params(n_mels, width, layers) + 2 * width * n_tokens + n_tokens


def ctc_loss_sum(logits: torch.Tensor, steps: torch.Tensor, y: torch.Tensor, y_len: torch.Tensor) -> torch.Tensor:
    """Summed CTC loss (nats) of a batch; utterances too short for their transcript add 0 (zero_infinity)."""
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)   # (steps, batch, tokens)
    return F.ctc_loss(log_probs, y, steps, y_len, blank=0, reduction="sum", zero_infinity=True)


def greedy_ctc(logits: torch.Tensor, steps: torch.Tensor) -> list[list[int]]:
    """Best path per utterance: argmax per step, repeats merged, blanks (0) dropped."""
    best = logits.argmax(-1).cpu()
    out = []
    for b, n in enumerate(steps.tolist()):
        path = torch.unique_consecutive(best[b, :n])
        out.append([int(t) for t in path if t != 0])
    return out


class CTCTask(SpeechTask):
    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, x_len, y, y_len = batch
        logits, steps = model(x, x_len.to(x.device))
        return ctc_loss_sum(logits, steps, y, y_len) / y_len.sum().clamp_min(1)

    def evaluate(self, model: nn.Module, device: str):
        return evaluate_ctc(model, self.data, device)


@torch.no_grad()
def evaluate_ctc(model: nn.Module, data: SpeechData, device: str = "cpu") -> tuple[float, float, dict[str, float]]:
    """(CTC loss per reference character, CER, {"wer": WER}) on the validation utterances."""
    from domains.speech_data import targets

    was_training = model.training
    model.eval()
    loss, chars, refs, hyps = 0.0, 0, [], []
    for _, x, x_len, texts in val_batches(data, EVAL_BATCH):
        y, y_len = targets(data, texts)
        logits, steps = model(x.to(device), x_len.to(device))
        loss += ctc_loss_sum(logits, steps, y.to(device), y_len).item()
        chars += int(y_len.sum())
        refs += texts
        hyps += [data.decode(ids) for ids in greedy_ctc(logits, steps)]
    model.train(was_training)
    cer, wer = error_rates(refs, hyps)
    return loss / max(1, chars), cer, {"wer": wer}


# Both families share the data and these budgets' subset sizes: quick spans 32 -> 4,096 utterances.
# Measured at width 32 on one busy core: 0.08-0.14 s a step (CTC), 0.13-0.2 s (attention), 0.1 s
# (CTC) and 0.4 s (attention, greedy decoding) per 256 validation utterances. Short rounds keep the
# small subsets from running hundreds of epochs before early stopping sees the plateau.
_SCALES = {
    "smoke": Scale(32, 3, TrainSettings(batch_size=16, max_steps=30, max_rounds=3, min_round_steps=10, patience=2),
                   {"width": 16, "layers": 1}, 3e-3, min_width=8, max_width=32, max_val_units=64),
    "quick": Scale(32, 8, TrainSettings(batch_size=32, max_steps=300, max_rounds=20, min_round_steps=20, patience=2),
                   {"width": 32, "layers": 1}, 3e-3, min_width=16, max_width=64, max_val_units=256),
    "full": Scale(64, 8, TrainSettings(batch_size=32, max_steps=20000, max_rounds=100, min_round_steps=200, patience=4),
                  {"width": 128, "layers": 2}, 1e-3, min_width=32, max_width=512, max_val_units=None),
}


class SpeechDomain:
    """``speech``: Deep Speech 2 style CTC recognisers (conv + BiGRU); character error rate."""

    name = "speech"
    units = ("utterances",)
    default_data = "synthetic:digits"
    size_knobs = ("width", "layers")   # width: GRU units per direction; layers: BiGRU layers
    grow_knob = "width"
    # Uses of each weight per utterance (`train_flops`): 1.2 s of digits at 30 ms a step.
    steps_per_utterance = STEPS_PER_UTTERANCE

    def metric(self, unit: str) -> MetricInfo:
        self._check_unit(unit)
        return MetricInfo("cer", "character error rate on the validation utterances (edit distance / reference characters)")

    def scale(self, budget: str, unit: str) -> Scale:
        self._check_unit(unit)
        return _SCALES[budget]

    def load(self, unit: str, data_path: str | None = None, max_val_units: int | None = None,
             pool_size: int | None = None) -> SpeechData:
        self._check_unit(unit)
        return load_speech(data_path, max_val_units, pool_size, domain=self.name)

    def build_model(self, size: Mapping[str, int], data: SpeechData) -> nn.Module:
        return DeepSpeech(data.n_mels, int(size["width"]), int(size["layers"]), data.n_tokens)

    def count_params(self, size: Mapping[str, int], data: SpeechData) -> int:
        return deepspeech_params(data.n_mels, int(size["width"]), int(size["layers"]), data.n_tokens)

    def train_flops(self, n_params: float, units: float) -> float:
        """6 * N * units * ``steps_per_utterance``: every weight is used about once per recurrent
        step (scale it for longer utterances)."""
        return 6.0 * n_params * units * self.steps_per_utterance

    def make_task(self, data: SpeechData, chunk_ids) -> SpeechTask:
        return CTCTask(data, chunk_ids)

    def train(self, spec: TrialSpec, data: SpeechData, chunk_ids, log: LogFn,
              device: str = "cpu") -> tuple[TrialResult, nn.Module]:
        def build():
            return self.build_model(spec.size, data), self.make_task(data, chunk_ids)

        return train_trial(spec, build, self.count_params(spec.size, data), log, device)

    def evaluate(self, model: nn.Module, data: SpeechData, device: str = "cpu") -> tuple[float, float]:
        return self.make_task(data, []).evaluate(model, device)[:2]

    def _check_unit(self, unit: str) -> None:
        if unit not in self.units:
            raise ValueError(f"domain {self.name} has no unit {unit!r}; its unit is 'utterances'")


class CTCPredictor:
    """A registered CTC recogniser (`domains.serve`): input column ``audio``, each a mono
    waveform of float32 samples in [-1, 1] at 16 kHz, at least 25 ms long; output column
    ``transcript``, the greedy decode (`greedy_ctc`). Features are made as in training:
    `featurise_many` (40 log-mel bands) and `normalise` with the training pool's statistics."""

    inputs = ("audio",)
    params: dict[str, int] = {}

    def __init__(self, model: nn.Module, settings: dict):
        self.model, self.s = model, settings
        self.mean = np.asarray(settings["mean"], dtype=np.float32)[None, :]
        self.std = np.asarray(settings["std"], dtype=np.float32)[None, :]

    @classmethod
    def export(cls, data: SpeechData) -> Export:
        if data.feat_mean is None:
            raise ValueError("speech data without its feature statistics; load the data again")
        settings = {"vocab": data.vocab, "sample_rate_hz": SAMPLE_RATE_HZ, "n_mels": data.n_mels,
                    "mean": data.feat_mean.ravel().tolist(), "std": data.feat_std.ravel().tolist()}
        # The data keep features, not audio: the example is half a second of silence, the input's form.
        return Export(settings, {"audio": [[0.0] * (SAMPLE_RATE_HZ // 2)]})

    @classmethod
    def build(cls, settings: dict, size: Mapping[str, int]) -> nn.Module:
        return DeepSpeech(settings["n_mels"], int(size["width"]), int(size["layers"]), len(settings["vocab"]) + 1)

    @classmethod
    def load(cls, config, files, state) -> "CTCPredictor":
        model = cls.build(config["settings"], config["size"])
        model.load_state_dict(state)
        return cls(model, config["settings"])

    def features(self, waves: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded normalised features (batch, frames, mels) and frame counts, as `gather` gives in training."""
        clips = []
        for row, wave in enumerate(waves):
            try:
                a = np.asarray(wave, dtype=np.float32)
            except (TypeError, ValueError):
                raise ValueError(f"row {row}: audio must be a sequence of numbers") from None
            if a.ndim != 1 or len(a) < WINDOW_SAMPLES:
                raise ValueError(f"row {row}: audio must be one channel of at least {WINDOW_SAMPLES} samples "
                                 f"(25 ms at 16 kHz), got shape {a.shape}")
            clips.append(a)
        frames = [torch.from_numpy(normalise(f.numpy(), self.mean, self.std))
                  for f in featurise_many(clips, SAMPLE_RATE_HZ)]
        offsets = np.cumsum([0] + [len(f) for f in frames])
        return gather(torch.cat(frames), offsets, range(len(frames)))

    def decode(self, x: torch.Tensor, frames: torch.Tensor) -> list[list[int]]:
        return greedy_ctc(*self.model(x, frames))

    def predict(self, columns, params) -> dict[str, list]:
        waves, out = columns["audio"], []
        for start in range(0, len(waves), EVAL_BATCH):
            x, frames = self.features(waves[start:start + EVAL_BATCH])
            out += [decode_ids(self.s["vocab"], ids) for ids in self.decode(x, frames)]
        return {"transcript": out}
