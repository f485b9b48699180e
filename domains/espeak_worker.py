"""Synthesise utterances with libespeak-ng (from the ``espeakng-loader`` wheel) through ctypes.

Run as a script in a fresh process (``python espeak_worker.py JOB.json OUT.npz``): libespeak-ng
keeps global state between utterances (pitch flutter, filter memories) that neither
``espeak_Terminate`` nor ``espeak_ng_SetRandSeed`` resets, so the same utterance spoken twice in
one process differs in its last bits. A fresh process per shard makes the audio a pure function
of the shard's job. The script imports only numpy and espeakng_loader (no torch), so it starts
in a fraction of a second.

Job: ``{"rand_seed": int, "items": [{"text": str, "voice": "en-us+m3", "rate_wpm": int,
"pitch": int}, ...]}``. Output: ``audio`` (all int16 samples at 22,050 Hz, concatenated) and
``offsets`` (n + 1 sample offsets).
"""

from __future__ import annotations

import ctypes
import json
import sys

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE, ESPEAK_PITCH = 1, 3            # espeak_PARAMETER values
POS_CHARACTER, ESPEAK_CHARS_UTF8 = 1, 1
SAMPLE_RATE_HZ = 22050

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """One initialised libespeak-ng with a callback that collects int16 samples."""

    def __init__(self, rand_seed: int = 0):
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)   # kept on self: ctypes must not free it
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate != SAMPLE_RATE_HZ:
            raise RuntimeError(f"libespeak-ng initialised at {rate} Hz, expected {SAMPLE_RATE_HZ}")
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_ng_SetRandSeed(rand_seed)

    def _collect(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0   # 0: go on synthesising

    def say(self, text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
        """int16 samples at 22,050 Hz of ``text`` spoken by ``voice`` (``accent+variant``)."""
        self._chunks = []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"libespeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(ESPEAK_RATE, int(rate_wpm), 0)
        self.lib.espeak_SetParameter(ESPEAK_PITCH, int(pitch), 0)
        raw = text.encode()
        if self.lib.espeak_Synth(raw, len(raw) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None) != 0:
            raise RuntimeError(f"libespeak-ng failed to speak {text!r}")
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def synthesise(job: dict) -> tuple[np.ndarray, np.ndarray]:
    """(concatenated int16 audio, n + 1 offsets) for the job's items, in order."""
    engine = Espeak(int(job.get("rand_seed", 0)))
    clips = [engine.say(it["text"], it["voice"], it["rate_wpm"], it["pitch"]) for it in job["items"]]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64)
    return np.concatenate(clips).astype(np.int16), offsets


if __name__ == "__main__":
    job_path, out_path = sys.argv[1], sys.argv[2]
    with open(job_path) as f:
        audio, offsets = synthesise(json.load(f))
    with open(out_path, "wb") as f:
        np.savez(f, audio=audio, offsets=offsets)
