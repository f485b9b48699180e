"""The speech domains' own parts: deterministic eSpeak NG synthesis with held-out voices, CER/WER,
user data (manifest and LibriSpeech folder) and its errors, the cache, the sentences set and the
attention decoder's length cap. What every domain does (parameter counts, a training step, a smoke
study) is checked in test_domain_contract.py, on a small synthetic pool."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile
import torch

import domains
from domains import speech_data as sd
from domains.protocol import DataError, TrialSpec


@pytest.fixture(scope="module")
def clips():
    """14 spoken digit strings from training voices (one synthesis run shared by the tests)."""
    items = sd.digit_items(14, seed=5, variants=sd.voice_variants()[0])
    return items, sd.synthesise(items, rand_seed=3)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, clips):
    """A TSV manifest of 14 WAV files (22,050 Hz int16): 12 for training, 2 held out (every 10th line... and a val row)."""
    items, audio = clips
    d = tmp_path_factory.mktemp("manifest")
    lines = ["path\ttranscript"]
    for i, (it, wave) in enumerate(zip(items, audio)):
        soundfile.write(d / f"u{i}.wav", wave, sd.SYNTH_RATE_HZ, subtype="PCM_16")
        lines.append(f"u{i}.wav\t{it['text'].upper()}")
    (d / "list.tsv").write_text("\n".join(lines) + "\n")
    return d / "list.tsv"


@pytest.fixture(scope="module")
def data(manifest):
    return domains.get("speech").load("utterances", str(manifest))


def test_synthesis_is_deterministic_and_validation_voices_are_held_out(clips):
    items, audio = clips
    again = sd.synthesise(items, rand_seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(audio, again))
    assert all(0.3 < len(a) / sd.SYNTH_RATE_HZ < 5.0 and np.abs(a).max() > 1000 for a in audio)
    train_v, val_v = sd.voice_variants()
    assert len(train_v) > 50 and len(val_v) == sd.N_VAL_VARIANTS and not set(train_v) & set(val_v)
    val_items = sd.digit_items(50, seed=2, variants=val_v)
    assert {it["voice"].split("+")[1] for it in val_items} <= set(val_v)
    assert len({it["voice"].split("+")[0] for it in val_items}) > 4        # many accents
    assert all(set(it["text"].split()) <= set(sd.DIGIT_WORDS) for it in val_items)


def test_error_rates_on_known_strings():
    assert sd.edit_distance("kitten", "sitting") == 3
    assert sd.edit_distance("", "abc") == 3 and sd.edit_distance("abc", "abc") == 0
    cer, wer = sd.error_rates(["one two", "three"], ["one too", ""])
    assert cer == pytest.approx((1 + 5) / (7 + 5)) and wer == pytest.approx(2 / 3)
    assert sd.error_rates(["nine four"], [""]) == (1.0, 1.0)     # the best guess: an empty transcript


def test_manifest_data(data):
    assert len(data.train_texts) == 13 and len(data.val_texts) == 1          # the 10th line is held out
    assert data.unit == "utterances" and data.best_guess_error() == 1.0
    assert data.train_texts[0] == data.train_texts[0].lower() and set(data.vocab) <= set("abcdefghijklmnopqrstuvwxyz ")
    assert data.n_mels == sd.N_MELS and abs(float(data.train_feats.float().mean())) < 0.05


def test_librispeech_folder(tmp_path, clips):
    items, audio = clips
    for spk in ("19", "26"):
        chapter = tmp_path / spk / "198"
        chapter.mkdir(parents=True)
        lines = []
        for i in range(5):
            k = (int(spk) + i) % len(audio)
            soundfile.write(chapter / f"{spk}-198-{i:04d}.flac", audio[k], sd.SYNTH_RATE_HZ)
            lines.append(f"{spk}-198-{i:04d} {items[k]['text'].upper()}")
        (chapter / f"{spk}-198.trans.txt").write_text("\n".join(lines) + "\n")
    data = domains.get("speech_attn").load("utterances", str(tmp_path))
    # Speaker 19 (first in sorted order) is held out; speaker 26 trains.
    assert len(data.train_texts) == 5 and len(data.val_texts) == 5
    assert data.val_texts[0] == items[19 % len(items)]["text"]


def test_the_generated_pool_is_cached(domain_data, speech_cache):
    """The contract's small pool (``--pool-size 16``): 16 training utterances, 64 validation ones
    (the floor of N/8), written once to the cache under a name that hashes every setting."""
    data = domain_data("speech")
    assert len(data.train_texts) == 16 and len(data.val_texts) == 64
    assert len(list((speech_cache / "speech").glob("digits-*.npz"))) >= 1


def test_corrupt_cache_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("SCAL_CACHE", str(tmp_path))
    first = sd.load_synthetic("digits", n_train=6, n_val=2, seed=1)
    (cache,) = (tmp_path / "speech").glob("digits-*.npz")
    cache.write_bytes(b"not an npz")
    again = sd.load_synthetic("digits", n_train=6, n_val=2, seed=1)
    assert again.train_texts == first.train_texts and np.array_equal(again.train_feats.numpy(), first.train_feats.numpy())
    assert not list((tmp_path / "speech").glob("*.tmp"))


def test_sentences_option(tmp_path, monkeypatch):
    """``--data synthetic:sentences``: Shakespeare lines, validation text and voices unseen in training."""
    monkeypatch.setenv("SCAL_CACHE", str(tmp_path))
    data = sd.load_speech("synthetic:sentences", pool_size=24)
    assert len(data.train_texts) == 24 and len(data.val_texts) == 64
    from domains.text import shakespeare

    corpus = shakespeare()
    train_lines = {ln for doc in corpus.train_docs for ln in sd.spoken_lines(doc)}
    assert set(data.train_texts) <= train_lines
    assert set(data.val_texts) <= set(sd.spoken_lines(corpus.validation)) and not set(data.val_texts) & train_lines
    assert all(4 <= len(t.split()) <= 10 for t in data.train_texts + data.val_texts)
    assert set(data.vocab) <= set("abcdefghijklmnopqrstuvwxyz' ") and len(data.vocab) > 20
    (cache,) = (tmp_path / "speech").glob("sentences-*.npz")
    with np.load(cache) as z:
        voices = [str(v).split("+")[1] for v in z["voices"]]
    assert set(voices[24:]) <= set(sd.voice_variants()[1]) and not set(voices[:24]) & set(sd.voice_variants()[1])
    # Sentences are longer than digit strings: frames per utterance, and one CTC step on them.
    assert np.diff(data.train_offsets).mean() > 160          # digit strings: 120 frames on average
    dom = domains.get("speech")
    sc = dom.scale("smoke", "utterances")
    spec = TrialSpec("speech", "utterances", 8, {"width": 8, "layers": 1}, 3e-3, 0, "smoke",
                     replace(sc.train, max_steps=1, max_rounds=1, min_round_steps=1))
    result, _ = dom.train(spec, data, np.arange(8), lambda m, s: None)
    assert result.ok and result.steps == 1 and 0 < result.min_val_error


def test_attention_decoding_stops_at_the_duration_cap(data):
    """Greedy decoding keeps each transcript within its own cap: ceil(1.25 * rate * steps) + 2."""
    from domains import speech_attn as sa

    rate = sa.chars_per_step(data)
    frames = torch.tensor(np.diff(data.train_offsets))
    steps = (frames + 2 * 5 - 11) // sa.ATTN_STRIDE + 1
    chars = torch.tensor([len(data.encode(t)) for t in data.train_texts])
    assert rate == pytest.approx(float((chars / steps).max()))
    limits = sa.decode_limits(frames, rate, longest=1000)
    assert torch.equal(limits, torch.ceil(1.25 * rate * steps.double()).long() + 2) and bool((limits > chars).all())
    assert torch.equal(sa.decode_limits(frames, rate, longest=4), torch.full_like(limits, 4))
    torch.manual_seed(0)
    model = domains.get("speech_attn").build_model({"width": 8, "layers": 1}, data).eval()
    with torch.no_grad():   # a bias towards "e" keeps the untrained decoder from ever ending
        model.head.bias.copy_(torch.full_like(model.head.bias, -10.0))
        model.head.bias[data.vocab.index("e") + 1] = 10.0
    x, x_len = sd.gather(data.val_feats, data.val_offsets, range(len(data.val_texts)))
    cap = torch.arange(1, len(data.val_texts) + 1)
    assert [len(h) for h in model.greedy(x, x_len, cap)] == cap.tolist()


def _bad_manifest(tmp):
    (tmp / "m.tsv").write_text("nowhere.wav\tone two\n")
    return tmp / "m.tsv"


def _unreadable_audio(tmp):
    (tmp / "bad.wav").write_bytes(b"RIFF this is not audio at all")
    (tmp / "m.csv").write_text("bad.wav,one two\n")
    return tmp / "m.csv"


def _binary_manifest(tmp):
    (tmp / "m.csv").write_bytes(bytes(range(128, 256)) * 3)
    return tmp / "m.csv"


@pytest.mark.parametrize("make,needle", [
    (lambda p: p / "missing", "no such file or folder"),
    (_binary_manifest, "m.csv: not UTF-8 text"),
    (lambda p: "synthetic:sentence", "no such synthetic set; choose synthetic:digits or synthetic:sentences"),
    (_bad_manifest, "does not exist"),
    (_unreadable_audio, "cannot read audio"),
])
def test_bad_data_is_a_one_line_error(tmp_path, make, needle):
    with pytest.raises(DataError, match=needle) as err:
        domains.get("speech").load("utterances", str(make(tmp_path)))
    assert str(err.value).startswith("--data ") and "\n" not in str(err.value)


def test_too_little_data_is_a_data_error(tmp_path, clips):
    items, audio = clips
    soundfile.write(tmp_path / "a.wav", audio[0], sd.SYNTH_RATE_HZ)
    (tmp_path / "m.tsv").write_text(f"a.wav\t{items[0]['text']}\ttrain\na.wav\t{items[0]['text']}\tval\n")
    with pytest.raises(DataError, match="at least 2 training"):
        domains.get("speech").load("utterances", str(tmp_path / "m.tsv"))
