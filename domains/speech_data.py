"""Data for the speech domains (``speech``, ``speech_attn``): utterances as log-mel features and
character transcripts, shared by both model families.

Default data: **synthetic speech** (real text, real voices, a synthesiser, not recordings).
Spoken digit strings ("three nine one four", 2 to 6 digits) made in-process with libespeak-ng 1.52
from the ``espeakng-loader`` wheel: 8 English accents x the wheel's voice variants (about 100),
speaking rate 120-240 words per minute and pitch 20-80, all drawn from a seeded generator.
Validation utterances are spoken by a held-out set of voice variants that never speak a training
utterance. Learning curves on synthetic speech are cleaner (and lower) than on recorded speech.

The larger option, ``--data synthetic:sentences``: lines of verse and prose of 4 to 10 words
from the shipped Shakespeare corpus (`domains.text.shakespeare`), lower-cased, punctuation
dropped, spoken the same way. Training lines come from the training plays, validation lines
from the two validation plays (less any line the training plays also have), so validation has
unseen voices *and* unseen text; a 28-character alphabet (a-z, apostrophe, space) instead of
the digits' 16, and utterances 1.6x as long (7.7 words, 1.95 s on average against 1.2 s).
``--data synthetic:digits`` names the default.

The pool holds 8,192 training utterances (``--pool-size N`` asks for another number, at most
65,536) and 1,024 validation ones (N/8 between 64 and 1,024); generating them takes about a minute on 2 cores, once: the features
are cached under ``$SCAL_CACHE/speech`` (default ``~/.cache/scal/speech``) in a file
named by a hash of every generation setting; the write is atomic, and a corrupt file is made anew.

User data (``--data PATH``), audio read with soundfile and resampled to 16 kHz:

- a LibriSpeech-style folder: ``speaker/chapter/*.flac`` with ``speaker-chapter.trans.txt``
  (lines ``UTTERANCE-ID TRANSCRIPT``). Held out for validation: every speaker whose position in
  the sorted speaker list is a multiple of 10 (so about a tenth of the speakers, disjoint from
  training); with one speaker only, every tenth utterance.
- a manifest ``.tsv`` or ``.csv``: ``audio_path<TAB or comma>transcript[<sep>split]`` per line,
  paths relative to the manifest's folder; a first line ``path...`` is a header. The optional
  third column (``train`` / ``val``) chooses the split; without it every tenth line (the 10th,
  20th, ...) is held out.

Transcripts are lower-cased with runs of white space collapsed; the output characters are those
of the training transcripts (validation characters outside them count as errors).
Features: 40 log-mel bands, 25 ms windows every 10 ms at 16 kHz (torchaudio), normalised per band
with the training pool's mean and standard deviation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio

from domains.common import generated_pool
from domains.protocol import DataError, read_text

SAMPLE_RATE_HZ = 16000
SYNTH_RATE_HZ = 22050
N_MELS = 40
WINDOW_SAMPLES = 400           # 25 ms at 16 kHz
HOP_SAMPLES = 160              # 10 ms at 16 kHz
LOG_FLOOR = 1e-6

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us", "en-us-nyc")
N_VAL_VARIANTS = 16            # voice variants held out: they speak only validation utterances
VOICE_SPLIT_SEED = 2017
POOL_UTTERANCES = 8192         # training pool of the default data (quick uses up to 4,096, full 8,192)
# --pool-size cap: 8x the default, about 8 minutes of synthesis on 2 cores and 0.6 GB of features
MAX_POOL_UTTERANCES = 65536
VAL_UTTERANCES = 1024
SHARD_UTTERANCES = 512         # one fresh synthesiser process per shard (see espeak_worker)
CACHE_VERSION = 1


# --------------------------------------------------------------------------- error rates

def edit_distance(ref: list | str, hyp: list | str) -> int:
    """Levenshtein distance (substitutions, insertions, deletions each cost 1), one DP row at a time."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def error_rates(refs: list[str], hyps: list[str]) -> tuple[float, float]:
    """(CER, WER): summed edit distances over summed reference lengths, in characters and in words.

    An empty hypothesis scores exactly 1 (every reference unit deleted): the best-guess error.
    """
    char_err = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    word_err = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    n_chars = max(1, sum(len(r) for r in refs))
    n_words = max(1, sum(len(r.split()) for r in refs))
    return char_err / n_chars, word_err / n_words


# --------------------------------------------------------------------------- synthesis

def _espeak_data_dir() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def voice_variants() -> tuple[list[str], list[str]]:
    """(training variants, held-out validation variants) of the wheel's voice variants, split by a fixed seed."""
    names = sorted(p.name for p in (_espeak_data_dir() / "voices" / "!v").iterdir() if " " not in p.name)
    order = np.random.default_rng(VOICE_SPLIT_SEED).permutation(len(names))
    held = {names[i] for i in order[:N_VAL_VARIANTS]}
    return [n for n in names if n not in held], [n for n in names if n in held]


def digit_items(n: int, seed: int, variants: list[str]) -> list[dict]:
    """``n`` spoken digit strings (2-6 digits) with voice, rate and pitch drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        digits = rng.integers(0, 10, size=int(rng.integers(2, 7)))
        text = " ".join(DIGIT_WORDS[d] for d in digits)
        items.append({"text": text, **_speaker(rng, variants)})
    return items


def _speaker(rng: np.random.Generator, variants: list[str]) -> dict:
    """A voice (accent + variant), a rate (words per minute) and a pitch drawn from ``rng``."""
    voice = f"{ACCENTS[rng.integers(len(ACCENTS))]}+{variants[rng.integers(len(variants))]}"
    return {"voice": voice, "rate_wpm": int(rng.integers(120, 241)), "pitch": int(rng.integers(20, 81))}


SENTENCE_WORDS = (4, 10)       # words per spoken line of the sentences option
_STAGE = ("enter ", "exit", "exeunt", "re-enter", "act ", "scene ", "epilogue", "prologue")


def spoken_lines(text: str) -> list[str]:
    """The distinct spoken lines of a play's text with 4-10 words, normalised: lower case, letters
    and apostrophes only. Speaker labels ("HELENA:"), headings in capitals and stage directions
    are not spoken lines."""
    out, seen = [], set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.endswith(":") or line.isupper() or line.lower().startswith(_STAGE):
            continue
        words = "".join(c if c.isalpha() and c.isascii() or c == "'" else " " for c in line.lower()).split()
        words = [w.strip("'") for w in words if w.strip("'")]
        norm = " ".join(words)
        if SENTENCE_WORDS[0] <= len(words) <= SENTENCE_WORDS[1] and norm not in seen:
            seen.add(norm)
            out.append(norm)
    return out


def sentence_items(n: int, seed: int, variants: list[str], lines: list[str]) -> list[dict]:
    """``n`` of ``lines`` (without repeats while the lines last) with voice, rate and pitch from ``seed``."""
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(lines)) for _ in range(-(-n // len(lines)))])[:n]
    return [{"text": lines[i], **_speaker(rng, variants)} for i in order]


def synthesise(items: list[dict], rand_seed: int) -> list[np.ndarray]:
    """int16 clips at 22,050 Hz for ``items``, spoken in fresh processes of `domains.espeak_worker`,
    one per shard of ``SHARD_UTTERANCES`` (as many at once as there are cores). The audio depends
    only on the items and the seed, never on how many processes ran."""
    worker = Path(__file__).with_name("espeak_worker.py")
    shards = [items[s:s + SHARD_UTTERANCES] for s in range(0, len(items), SHARD_UTTERANCES)]

    def run_shard(k: int) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="scal-espeak-") as tmp:
            job, out = Path(tmp) / "job.json", Path(tmp) / "out.npz"
            job.write_text(json.dumps({"rand_seed": rand_seed * 1000 + k, "items": shards[k]}))
            proc = subprocess.run([sys.executable, str(worker), str(job), str(out)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"speech synthesis failed: {proc.stderr.strip().splitlines()[-1:]}")
            with np.load(out) as z:
                audio, offsets = z["audio"], z["offsets"]
        return [audio[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        return [clip for shard in pool.map(run_shard, range(len(shards))) for clip in shard]


# --------------------------------------------------------------------------- features

_MEL = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE_HZ, n_fft=WINDOW_SAMPLES, hop_length=HOP_SAMPLES, n_mels=N_MELS)


def to_16k(wave: np.ndarray, rate_hz: int) -> np.ndarray:
    """float32 samples in [-1, 1] at 16 kHz. int16 input is scaled by 1/32768. Polyphase
    resampling (scipy's resample_poly, a Kaiser-windowed FIR): 7x faster on CPU than
    torchaudio's resample for the 22,050 -> 16,000 Hz ratio, 320/441."""
    from math import gcd

    from scipy.signal import resample_poly

    x = wave.astype(np.float32) / 32768.0 if wave.dtype == np.int16 else wave.astype(np.float32)
    if rate_hz != SAMPLE_RATE_HZ:
        g = gcd(SAMPLE_RATE_HZ, rate_hz)
        x = resample_poly(x, SAMPLE_RATE_HZ // g, rate_hz // g).astype(np.float32)
    return x


def featurise_many(clips: list[np.ndarray], rate_hz: int, batch: int = 256) -> list[torch.Tensor]:
    """Log-mel features (frames, 40) float32 of each clip: 16 kHz, 25 ms windows every 10 ms.

    Work is batched because per-clip calls cost 10x more on a busy CPU: a batch is resampled as
    one signal (the FIR filter reaches 0.6 ms into a neighbour, which is silence at the clips'
    ends) and its mel bands are taken on a padded (batch, samples) tensor, keeping the
    1 + samples // hop frames of each clip's own length.
    """
    out = []
    for s in range(0, len(clips), batch):
        lengths = np.array([len(c) for c in clips[s:s + batch]])
        signal = to_16k(np.concatenate(clips[s:s + batch]), rate_hz)
        ends = np.round(np.cumsum(lengths) * SAMPLE_RATE_HZ / rate_hz).astype(int)
        part = [torch.from_numpy(p) for p in np.split(signal, ends[:-1])]
        padded = torch.nn.utils.rnn.pad_sequence(part, batch_first=True)
        with torch.no_grad():
            logmel = torch.log(_MEL(padded) + LOG_FLOOR).transpose(1, 2)
        out += [logmel[i, :1 + len(p) // HOP_SAMPLES].clone() for i, p in enumerate(part)]
    return out


def _pack(frames: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """(all frames concatenated, n + 1 frame offsets)."""
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames])]).astype(np.int64)
    return torch.cat(frames).numpy(), offsets


# --------------------------------------------------------------------------- the dataset

@dataclass
class SpeechData:
    """Utterances as normalised log-mel frames (float16, concatenated) with character targets.

    Token ids: 0 is reserved (the CTC blank, or end-of-sentence for the attention decoder);
    character ``vocab[i]`` is id ``i + 1``. ``feat_mean`` and ``feat_std`` (1, N_MELS) are the
    training pool's per-band statistics that `normalise` used.
    """

    unit: str
    vocab: list[str]
    train_feats: torch.Tensor        # (total frames, N_MELS) float16
    train_offsets: np.ndarray        # (n + 1,) int64
    train_texts: list[str]
    val_feats: torch.Tensor
    val_offsets: np.ndarray
    val_texts: list[str]
    source: str = ""
    feat_mean: np.ndarray | None = None
    feat_std: np.ndarray | None = None

    def chunk_sizes(self) -> np.ndarray:
        return np.ones(len(self.train_texts), dtype=np.int64)

    def best_guess_error(self) -> float:
        return 1.0

    @property
    def n_tokens(self) -> int:
        """Output classes: the characters plus the reserved id 0."""
        return len(self.vocab) + 1

    @property
    def n_mels(self) -> int:
        return int(self.train_feats.shape[1])

    def encode(self, text: str) -> list[int]:
        index = {c: i + 1 for i, c in enumerate(self.vocab)}
        return [index[c] for c in text if c in index]

    def decode(self, ids) -> str:
        return decode_ids(self.vocab, ids)


def decode_ids(vocab: list[str], ids) -> str:
    """The characters of token ids (``vocab[i - 1]`` for id i); the reserved id 0 is dropped."""
    return "".join(vocab[i - 1] for i in ids if 0 < i <= len(vocab))


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Log-mel frames (frames, mels) normalised per band, as float16 (how the features are kept)."""
    return ((x.astype(np.float32, copy=False) - mean) / std).astype(np.float16)


def normalise_text(text: str) -> str:
    return " ".join(text.lower().split())


def _build(train: tuple[np.ndarray, np.ndarray, list[str]], val: tuple[np.ndarray, np.ndarray, list[str]],
           max_val: int | None, source: str) -> SpeechData:
    """SpeechData from packed (frames, offsets, texts) of each split, normalised per mel band."""
    (train_x, train_off, tt), (val_x, val_off, vt) = train, val
    if max_val is not None and max_val < len(vt):
        vt, val_off = vt[:max_val], val_off[:max_val + 1]
        val_x = val_x[:val_off[-1]]
    if len(tt) < 2 or len(vt) < 1:
        raise DataError(f"{source}: need at least 2 training and 1 validation utterance, got {len(tt)} and {len(vt)}")
    train_x, val_x = train_x.astype(np.float32), val_x.astype(np.float32)
    mean, std = train_x.mean(0, keepdims=True), train_x.std(0, keepdims=True).clip(1e-3)
    vocab = sorted(set("".join(tt)))
    return SpeechData("utterances", vocab,
                      torch.from_numpy(normalise(train_x, mean, std)), train_off, list(tt),
                      torch.from_numpy(normalise(val_x, mean, std)), val_off - val_off[0], list(vt), source, mean, std)


def cache_dir() -> Path:
    base = Path(os.environ["SCAL_CACHE"]) if os.environ.get("SCAL_CACHE") else Path.home() / ".cache" / "scal"
    return base / "speech"


SYNTHETIC = {"synthetic:digits": "digits", "synthetic:sentences": "sentences"}   # --data names


def synthetic_settings(kind: str = "digits", n_train: int = POOL_UTTERANCES, n_val: int = VAL_UTTERANCES,
                       seed: int = 0) -> dict:
    """Every setting the synthetic data depend on; its hash names the cache file."""
    train_v, val_v = voice_variants()
    text = {"digits": [2, 6]} if kind == "digits" else {"sentence_words": list(SENTENCE_WORDS), "text": "shakespeare"}
    return {"kind": kind, "version": CACHE_VERSION, "n_train": n_train, "n_val": n_val, "seed": seed,
            **text, "rate_wpm": [120, 240], "pitch": [20, 80], "accents": list(ACCENTS),
            "train_variants": train_v, "val_variants": val_v, "engine": "libespeak-ng 1.52 (espeakng-loader 0.2.4)",
            "features": {"rate_hz": SAMPLE_RATE_HZ, "n_mels": N_MELS, "window": WINDOW_SAMPLES, "hop": HOP_SAMPLES}}


def _items(settings: dict) -> tuple[list[dict], list[dict]]:
    """(training items, validation items) of the synthetic data: text, voice, rate, pitch."""
    seed, n_train, n_val = settings["seed"], settings["n_train"], settings["n_val"]
    train_v, val_v = settings["train_variants"], settings["val_variants"]
    if settings["kind"] == "digits":
        return digit_items(n_train, seed * 2 + 1, train_v), digit_items(n_val, seed * 2 + 2, val_v)
    from domains.text import shakespeare

    corpus = shakespeare()
    train_lines = [ln for doc in corpus.train_docs for ln in spoken_lines(doc)]
    seen = set(train_lines)
    val_lines = [ln for ln in spoken_lines(corpus.validation) if ln not in seen]   # unseen text only
    return (sentence_items(n_train, seed * 2 + 1, train_v, train_lines),
            sentence_items(n_val, seed * 2 + 2, val_v, val_lines))


def _generate(settings: dict) -> dict[str, np.ndarray]:
    """Synthesise and featurise the pool and the validation set (arrays as stored in the cache)."""
    seed = settings["seed"]
    train_items, val_items = _items(settings)
    clips = synthesise(train_items + val_items, seed)
    feats = [f.to(torch.float16) for f in featurise_many(clips, SYNTH_RATE_HZ)]
    x, offsets = _pack(feats)
    items = train_items + val_items
    return {"feats": x, "offsets": offsets, "texts": np.array([it["text"] for it in items]),
            "voices": np.array([it["voice"] for it in items]), "n_train": np.array(settings["n_train"])}


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None   # absent or corrupt: made anew


def load_synthetic(kind: str = "digits", max_val: int | None = None, n_train: int = POOL_UTTERANCES,
                   n_val: int = VAL_UTTERANCES, seed: int = 0) -> SpeechData:
    """Synthetic ``digits`` (the default) or ``sentences``, from the cache or generated (and cached) now."""
    settings = synthetic_settings(kind, n_train, n_val, seed)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{kind}-{digest}.npz"
    arrays = _read_cache(path)
    if arrays is None or not {"feats", "offsets", "texts", "n_train"} <= arrays.keys():
        arrays = _generate(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temporary file, then rename: a killed run never leaves a half-written cache.
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    feats, offsets, texts = arrays["feats"], arrays["offsets"], [str(t) for t in arrays["texts"]]
    k = int(arrays["n_train"])
    train = (feats[:offsets[k]], offsets[:k + 1], texts[:k])
    val = (feats[offsets[k]:], offsets[k:] - offsets[k], texts[k:])
    return _build(train, val, max_val, f"synthetic {kind}")


# --------------------------------------------------------------------------- user data

def _read_audio(path: Path, data_path: str) -> torch.Tensor:
    import soundfile

    if not path.is_file():
        raise DataError(f"--data {data_path}: audio file {path} does not exist")
    try:
        wave, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:   # soundfile raises its own LibsndfileError (a RuntimeError) and others
        raise DataError(f"--data {data_path}: cannot read audio {path} ({str(exc).splitlines()[0]})") from None
    if len(wave) < WINDOW_SAMPLES:
        raise DataError(f"--data {data_path}: audio {path} is shorter than one 25 ms window")
    return featurise_many([wave.mean(axis=1)], int(rate))[0]


def _manifest_rows(path: Path, data_path: str) -> list[tuple[Path, str, str | None]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    lines = read_text(path, data_path).splitlines()
    rows = [r for r in csv.reader(lines, delimiter=delimiter) if r and any(c.strip() for c in r)]
    if rows and rows[0][0].strip().lower() in ("path", "audio", "audio_path", "file"):
        rows = rows[1:]
    out = []
    for i, r in enumerate(rows, start=1):
        if len(r) < 2:
            raise DataError(f"--data {data_path}: line {i} has no transcript (expects audio path, transcript[, split])")
        split = r[2].strip().lower() if len(r) > 2 and r[2].strip() else None
        if split not in (None, "train", "val"):
            raise DataError(f"--data {data_path}: line {i}: split must be train or val, not {r[2]!r}")
        out.append((path.parent / r[0].strip(), normalise_text(r[1]), split))
    return out


def _librispeech_rows(root: Path, data_path: str) -> list[tuple[Path, str, str | None]]:
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise DataError(f"--data {data_path}: no *.trans.txt files (expects a LibriSpeech-style folder or a .tsv/.csv manifest)")
    rows = []
    for t in transcripts:
        for line in read_text(t, data_path).splitlines():
            if line.strip():
                utt, _, text = line.strip().partition(" ")
                rows.append((t.parent / f"{utt}.flac", normalise_text(text), utt.split("-")[0]))
    speakers = sorted({spk for _, _, spk in rows})
    if len(speakers) == 1:
        return [(p, txt, "val" if i % 10 == 9 else "train") for i, (p, txt, _) in enumerate(rows)]
    held = {s for i, s in enumerate(speakers) if i % 10 == 0}
    return [(p, txt, "val" if spk in held else "train") for p, txt, spk in rows]


def load_user(data_path: str, max_val: int | None = None) -> SpeechData:
    root = Path(data_path)
    if root.is_dir():
        rows = _librispeech_rows(root, data_path)
    elif root.is_file() and root.suffix.lower() in (".tsv", ".csv"):
        rows = _manifest_rows(root, data_path)
        rows = [(p, t, s if s else ("val" if i % 10 == 9 else "train")) for i, (p, t, s) in enumerate(rows)]
    elif root.exists():
        raise DataError(f"--data {data_path}: expects a LibriSpeech-style folder or a .tsv/.csv manifest")
    else:
        raise DataError(f"--data {data_path}: no such file or folder")
    split = {"train": ([], []), "val": ([], [])}
    for audio, text, part in rows:
        if not text:
            raise DataError(f"--data {data_path}: empty transcript for {audio}")
        split[part][0].append(_read_audio(audio, data_path))
        split[part][1].append(text)
    packed = [(*_pack(split[part][0]), split[part][1]) if split[part][0] else (np.zeros((0, N_MELS), np.float32),
              np.zeros(1, np.int64), []) for part in ("train", "val")]
    return _build(packed[0], packed[1], max_val, f"--data {data_path}")


def load_speech(data_path: str | None = None, max_val: int | None = None, pool_size: int | None = None,
                domain: str = "speech") -> SpeechData:
    """The synthetic data (``None``: digits; or a name in `SYNTHETIC`) with ``pool_size`` training
    utterances (default `POOL_UTTERANCES`), else the user's folder or manifest."""
    generated = data_path is None or data_path in SYNTHETIC
    if not generated and data_path.startswith("synthetic:") and not Path(data_path).exists():
        raise DataError(f"--data {data_path}: no such synthetic set; choose {' or '.join(SYNTHETIC)}")
    n_train = generated_pool(domain, pool_size, POOL_UTTERANCES, MAX_POOL_UTTERANCES, None if generated else data_path)
    if not generated:
        return load_user(data_path, max_val)
    # One validation utterance per 8 of training, between 64 and 1,024: 1,024 for the default pool.
    return load_synthetic(SYNTHETIC.get(data_path, "digits"), max_val, n_train=n_train,
                          n_val=min(VAL_UTTERANCES, max(64, n_train // 8)))


# --------------------------------------------------------------------------- batches

def gather(feats: torch.Tensor, offsets: np.ndarray, ids) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded float32 features (batch, frames, mels) and frame counts for utterances ``ids``."""
    clips = [feats[offsets[i]:offsets[i + 1]] for i in ids]
    lengths = torch.tensor([len(c) for c in clips], dtype=torch.int64)
    return torch.nn.utils.rnn.pad_sequence(clips, batch_first=True).float(), lengths


def targets(data: SpeechData, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded character ids (batch, chars) and their counts."""
    ids = [torch.tensor(data.encode(t), dtype=torch.int64) for t in texts]
    lengths = torch.tensor([len(i) for i in ids], dtype=torch.int64)
    return torch.nn.utils.rnn.pad_sequence(ids, batch_first=True), lengths


class SpeechTask:
    """A trial's training subset: uniform minibatches with replacement, padded per batch."""

    def __init__(self, data: SpeechData, chunk_ids):
        self.data = data
        self.ids = np.asarray(chunk_ids, dtype=np.int64)

    def epoch_steps(self, batch_size: int) -> float:
        return len(self.ids) / batch_size

    def sample_batch(self, gen: torch.Generator, batch_size: int, device: str):
        pick = torch.randint(0, len(self.ids), (min(batch_size, len(self.ids)),), generator=gen).numpy()
        ids = self.ids[pick]
        x, x_len = gather(self.data.train_feats, self.data.train_offsets, ids)
        y, y_len = targets(self.data, [self.data.train_texts[i] for i in ids])
        return x.to(device), x_len, y.to(device), y_len


def val_batches(data: SpeechData, batch_size: int):
    """Validation utterances in batches of similar length: (ids, features, frame counts, texts)."""
    lengths = np.diff(data.val_offsets)
    order = np.argsort(lengths, kind="stable")
    for s in range(0, len(order), batch_size):
        ids = order[s:s + batch_size]
        x, x_len = gather(data.val_feats, data.val_offsets, ids)
        yield ids, x, x_len, [data.val_texts[i] for i in ids]
