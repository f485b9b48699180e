"""Registered models work on their own (`scal.registry`, `domains.serve`).

- lm (the session's smoke study) and image (one real trial, registered the way a study registers
  it): ``models:/<name>@largest`` loads in a Python that cannot import this repository
  (``python -I -S`` with only the virtual environment's site-packages on its path) and predicts,
  with `domains` imported from the model's own code folder; ``mlflow models serve`` answers
  HTTP requests on 127.0.0.1 for both.
- nmt and speech (CTC and attention): a model of the domain's small test data, saved as the
  registry saves it and loaded through ``mlflow.pyfunc``, gives what the domain's own evaluation
  code gives on the same input.
- every adapter's requirements cover what its modules import.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import json
import math
import os
import signal
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

import domains
from domains import serve
from domains.protocol import TrialSpec
from scal import keys, registry
from scal.names import artifact_location, model_name
from conftest import ROOT, free_port, sqlite_uri, wait_http

GENERATE = 24


def _largest(uri: str, name: str):
    return MlflowClient(uri, uri).get_model_version_by_alias(name, keys.ALIAS_LARGEST)


def _load_largest(m: dict):
    """The @largest version loaded in this process, from its artifact location (no global registry URI)."""
    client = MlflowClient(m["uri"], m["uri"])
    version = _largest(m["uri"], m["name"]).version
    return mlflow.pyfunc.load_model(client.get_model_version_download_uri(m["name"], version))


@pytest.fixture(scope="module")
def lm_model(lm_study):
    return {"uri": lm_study["uri"], "name": lm_study["summary"]["registered_model"]}


@pytest.fixture(scope="module")
def image_model(tmp_path_factory, domain_data):
    """One smoke-budget image trial on 256 images, registered as `scal.study` registers a subset's best fit."""
    dom, data = domains.get("image"), domain_data("image")
    scale = dom.scale("smoke", "images")
    spec = TrialSpec("image", "images", 256, dict(scale.size), scale.lr, 0, "smoke", scale.train)
    ids = np.random.default_rng(0).permutation(len(data.train_y))[:256]
    result, model = dom.train(spec, data, ids, lambda metrics, step: None, device="cpu")
    assert result.ok, result.reason
    uri = sqlite_uri(tmp_path_factory.mktemp("image_model"))
    client = MlflowClient(uri, uri)
    exp = client.create_experiment("scal-image-images", artifact_location=artifact_location(uri, "scal-image-images"))
    study_run = client.create_run(exp, run_name="serving-test-study").info.run_id
    trial_run = client.create_run(exp, tags={keys.PARENT: study_run}).info.run_id
    name = model_name("scal-image-images")
    version = registry.register(client, name, trial_run, model, result, "top1_error", study_run,
                                domain="image", unit="images", data=data)
    registry.set_largest(client, name, version)
    return {"uri": uri, "name": name, "result": result, "study_run": study_run}


# ---- the registered version -------------------------------------------------------------------

@pytest.mark.integration
def test_version_says_what_it_is(lm_model, image_model):
    client = MlflowClient(lm_model["uri"], lm_model["uri"])
    v = _largest(lm_model["uri"], lm_model["name"])
    size, n_params = int(v.tags[keys.R_SUBSET_SIZE]), int(v.tags[keys.R_N_PARAMS])
    study_run = client.get_run(v.tags[keys.R_STUDY_RUN])
    for text in (f"{size:,} characters", f"{n_params:,} parameters", "bits_per_char", study_run.info.run_id,
                 study_run.info.run_name, f"{float(v.tags[keys.R_MIN_VAL_ERROR]):.6g}"):
        assert text in v.description
    assert "pyfunc" in client.get_registered_model(lm_model["name"]).description

    img = _largest(image_model["uri"], image_model["name"])
    assert "256 images" in img.description and "top1_error" in img.description
    assert "serving-test-study" in img.description and image_model["study_run"] in img.description


@pytest.mark.integration
def test_model_folder_carries_code_preprocessing_and_pinned_requirements(lm_model, tmp_path):
    run_id = _largest(lm_model["uri"], lm_model["name"]).run_id
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path),
                                                     tracking_uri=lm_model["uri"]))
    assert (local / "data" / "scal" / "vocab.json").is_file() and (local / "data" / "scal" / "weights.pt").is_file()
    code = local / "code" / "domains"
    assert {"lm.py", "serve.py", "text.py"} <= {p.name for p in code.glob("*.py")}
    assert "REGISTRY" not in (code / "__init__.py").read_text()     # the bare __init__: no import of every domain
    assert not (code / "data").exists()                             # code only, not the shipped data sets
    reqs = (local / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in reqs} == {"mlflow", "torch", "numpy", "pandas"}   # lm needs nothing more
    assert all("==" in r and "+" not in r for r in reqs)
    example = json.loads((local / "input_example.json").read_text())
    assert example["columns"] == ["text"] and len(example["data"][0][0]) > 100


# ---- outside the repository ------------------------------------------------------------------

OUTSIDE = r"""
import importlib.util, json, sys
sys.path.append(sys.argv[1])                       # the virtual environment's packages, nothing else
assert importlib.util.find_spec("scal") is None and importlib.util.find_spec("domains") is None
import mlflow.pyfunc, numpy as np, pandas as pd
jobs = json.loads(sys.argv[2])
out = {}
for key, job in jobs.items():
    mlflow.set_registry_uri(job["uri"])
    model = mlflow.pyfunc.load_model(job["model"])
    frame = pd.DataFrame({job["column"]: job["rows"]})
    pred = model.predict(frame, params=job.get("params"))
    out[key] = {"columns": list(pred.columns), "records": json.loads(pred.to_json(orient="records"))}
import domains, domains.serve
out["domains_file"], out["serve_file"] = domains.__file__, domains.serve.__file__
print(json.dumps(out))
"""

TEXTS = ["To be, or not to be, that is the question:", "ROMEO:\nBut soft, what light through yonder window breaks?"]


def _image_rows(domain_data, n: int) -> tuple[list, np.ndarray]:
    """The first ``n`` validation images back in pixels (uint8, H x W), and their labels."""
    data = domain_data("image")
    x = data.val_x[:n] * torch.tensor(data.std).view(1, -1, 1, 1) + torch.tensor(data.mean).view(1, -1, 1, 1)
    pixels = (x * 255).round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()
    return [p.tolist() for p in pixels], data.val_y[:n].numpy()


@pytest.mark.integration
def test_models_load_and_predict_outside_the_repository(lm_model, image_model, domain_data, tmp_path):
    """The proof that a model needs nothing of this checkout: the subprocess runs with -I (no
    environment variables, no script or working folder on sys.path) and -S (no site-packages
    .pth files, so not the editable install that maps `domains` to this repo), from a temporary
    folder; its sys.path gets the venv's site-packages only."""
    images, labels = _image_rows(domain_data, 8)
    jobs = {
        "lm": {"uri": lm_model["uri"], "model": f"models:/{lm_model['name']}@{keys.ALIAS_LARGEST}",
               "column": "text", "rows": TEXTS, "params": {"generate": GENERATE}},
        "lm0": {"uri": lm_model["uri"], "model": f"models:/{lm_model['name']}@{keys.ALIAS_LARGEST}",
                "column": "text", "rows": TEXTS},
        "image": {"uri": image_model["uri"], "model": f"models:/{image_model['name']}@{keys.ALIAS_LARGEST}",
                  "column": "image", "rows": images},
    }
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}   # each job names its registry
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", OUTSIDE, sysconfig.get_paths()["purelib"],
                           json.dumps(jobs)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for f in (out["domains_file"], out["serve_file"]):   # the model's copy, not this checkout's
        assert Path(f).parent.name == "domains" and Path(f).parent.parent.name == "code"
        assert not Path(f).resolve().is_relative_to(ROOT)

    lm, lm0 = out["lm"]["records"], out["lm0"]["records"]
    assert out["lm"]["columns"] == ["loss", "continuation"] and len(lm) == len(TEXTS)
    best_guess = domain_data("lm", "char").best_guess_error()
    for row, plain in zip(lm, lm0):
        assert math.isfinite(row["loss"]) and 0 < row["loss"] < 1.5 * best_guess   # bits/char, about as trained
        assert len(row["continuation"]) == GENERATE and "<unk>" not in row["continuation"]
        assert plain["continuation"] == "" and plain["loss"] == pytest.approx(row["loss"])

    img = out["image"]["records"]
    assert out["image"]["columns"] == ["label", "probabilities"] and len(img) == len(images)
    classes = domain_data("image").classes
    for row in img:
        assert len(row["probabilities"]) == classes and sum(row["probabilities"]) == pytest.approx(1, abs=1e-5)
        assert row["label"] == int(np.argmax(row["probabilities"])) and 0 <= row["label"] < classes


@pytest.mark.integration
def test_registered_model_reproduces_the_domain_evaluation(lm_model, image_model, domain_data):
    """In-process: the served path (text or pixels in) gives what the domain's evaluation gives on
    the same data, so the model's preprocessing is training's."""
    from domains.image import evaluate_images
    from domains.lm import SEQ_LEN, evaluate_lm

    data = domain_data("lm", "char")
    model = _load_largest(lm_model)
    ids = data.val_ids[:SEQ_LEN + 1]
    assert 0 not in ids.tolist()               # text that decodes and encodes back to the same ids
    text = "".join(data.vocab[i] for i in ids.tolist())
    one_window = dataclasses.replace(data, val_ids=ids)
    expected_bits = evaluate_lm(model.get_raw_model(), one_window)[1]
    assert model.predict(pd.DataFrame({"text": [text]}))["loss"][0] == pytest.approx(expected_bits, rel=1e-4)

    img_data = domain_data("image")
    images, labels = _image_rows(domain_data, len(img_data.val_y))
    served = _load_largest(image_model)
    pred = served.predict(pd.DataFrame({"image": images}))
    top1 = float(np.mean(pred["label"].to_numpy() != labels))
    assert top1 == pytest.approx(evaluate_images(served.get_raw_model(), img_data)[1], abs=1e-9)
    assert top1 == pytest.approx(image_model["result"].min_val_error, abs=1e-9)


@pytest.mark.integration
@pytest.mark.parametrize("bad, message", [
    (pd.DataFrame({"image": [np.zeros((27, 28), np.uint8).tolist()]}), "shape"),
    (pd.DataFrame({"image": [np.full((28, 28), 300).tolist()]}), "0-255"),
    (pd.DataFrame({"pixels": [[0]]}), "image"),
])
def test_bad_input_is_a_clear_error(image_model, bad, message):
    model = _load_largest(image_model)
    with pytest.raises(Exception, match=message):
        model.predict(bad)


# ---- mlflow models serve ----------------------------------------------------------------------

def _serve(uri: str, name: str, cwd: Path):
    """``mlflow models serve`` of ``models:/<name>@largest`` on a free local port, in its own
    process group (it starts uvicorn under bash; the group is ended as a whole)."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}   # uvicorn
    log = open(cwd / f"serve-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                             f"models:/{name}@{keys.ALIAS_LARGEST}", "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)],
                            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port, log


def _wait_ready(proc, port: int, log_path: Path, timeout_s: float = 240) -> None:
    wait_http(f"http://127.0.0.1:{port}/ping", proc, timeout_s, log_path)


def _invoke(port: int, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as r:
        return json.loads(r.read())


@pytest.mark.integration
def test_mlflow_models_serve_answers_http(lm_model, image_model, domain_data, tmp_path):
    servers = {k: _serve(m["uri"], m["name"], tmp_path) for k, m in (("lm", lm_model), ("image", image_model))}
    try:
        for proc, port, log in servers.values():   # both start at once: the wait is the slower one's
            _wait_ready(proc, port, Path(log.name))
        _, port, _ = servers["lm"]
        lm = _invoke(port, {"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]},
                            "params": {"generate": GENERATE, "seed": 7}})["predictions"]
        assert len(lm) == len(TEXTS)
        assert all(math.isfinite(r["loss"]) and r["loss"] > 0 and len(r["continuation"]) == GENERATE for r in lm)
        with pytest.raises(urllib.error.HTTPError) as bad:   # one character has no loss: the client's error, said so
            _invoke(port, {"dataframe_split": {"columns": ["text"], "data": [["x"]]}})
        body = json.loads(bad.value.read())
        assert bad.value.code == 400 and "at least 2" in body["stack_trace"]
        # the server ran the model's own copy of the code, not this checkout's
        assert "/code/domains/lm.py" in body["stack_trace"] and str(ROOT / "domains") not in body["stack_trace"]

        images, _ = _image_rows(domain_data, 3)
        _, port, _ = servers["image"]
        img = _invoke(port, {"dataframe_split": {"columns": ["image"], "data": [[x] for x in images]}})["predictions"]
        assert len(img) == 3
        assert all(sum(r["probabilities"]) == pytest.approx(1, abs=1e-5) and 0 <= r["label"] < 10 for r in img)
        with pytest.raises(urllib.error.HTTPError) as bad:   # a wrong-size image is the client's error, said so
            _invoke(port, {"dataframe_split": {"columns": ["image"], "data": [[[[0, 1], [2, 3]]]]}})
        assert "shape" in bad.value.read().decode()
    finally:
        for proc, _, log in servers.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)   # the group this test started (mlflow, bash, uvicorn)
                proc.wait(timeout=30)
            log.close()


# ---- nmt and speech, in-process ------------------------------------------------------------------

def _saved(domain: str, data, tmp_path: Path):
    """A model of ``domain`` (its initial weights, seeded) saved as the registry saves it, loaded
    by mlflow.pyfunc; and the torch module itself, in eval mode."""
    dom = domains.get(domain)
    unit = domains.default_unit(dom)
    scale = dom.scale("smoke", unit)
    torch.manual_seed(0)
    model = dom.build_model(scale.size, data).eval()
    spec = TrialSpec(domain, unit, 64, dict(scale.size), scale.lr, 0, "smoke", scale.train)
    path = registry.save(tmp_path, domain, unit, model, spec, data, run_id="none")
    return mlflow.pyfunc.load_model(str(path)), model


@pytest.mark.integration
def test_nmt_model_translates_like_validation(domain_data, tmp_path):
    import sentencepiece as spm

    from domains.nmt import translate

    data = domain_data("nmt")
    served, model = _saved("nmt", data, tmp_path)
    rows = np.arange(4)
    expected = data.decode(translate(model, *data.src_val.batch(rows)))
    src_sp = spm.SentencePieceProcessor(model_proto=data.src_tokenizer)
    v = data.src_val
    sources = [src_sp.decode(v.ids[v.offsets[i]:v.offsets[i + 1] - 1].tolist()) for i in rows]   # text, without EOS
    pred = served.predict(pd.DataFrame({"source": sources}))
    assert list(pred.columns) == ["translation"] and pred["translation"].tolist() == expected


@pytest.mark.integration
@pytest.mark.parametrize("domain", ["speech", "speech_attn"])
def test_speech_model_transcribes_16k_audio_like_validation(domain, domain_data, tmp_path):
    from domains import speech_data as sd

    data = domain_data(domain)
    served, model = _saved(domain, data, tmp_path)
    items = sd.digit_items(2, seed=5, variants=sd.voice_variants()[1])
    clips = sd.synthesise(items, 5)
    waves = [sd.to_16k(c, sd.SYNTH_RATE_HZ) for c in clips]
    pred = served.predict(pd.DataFrame({"audio": waves}))
    assert list(pred.columns) == ["transcript"] and len(pred) == 2
    assert all(set(t) <= set(data.vocab) for t in pred["transcript"])
    # the same waveforms through the training features, the pool's statistics and the domain's own decoding
    feats = [torch.from_numpy(sd.normalise(f.numpy(), data.feat_mean, data.feat_std))
             for f in sd.featurise_many(waves, sd.SAMPLE_RATE_HZ)]
    x, frames = sd.gather(torch.cat(feats), np.cumsum([0] + [len(f) for f in feats]), range(2))
    if domain == "speech":
        from domains.speech import greedy_ctc

        ids = greedy_ctc(*model(x, frames))
    else:
        from domains.speech_attn import chars_per_step, decode_limits, longest_transcript

        ids = model.greedy(x, frames, decode_limits(frames, chars_per_step(data), longest_transcript(data)))
    assert pred["transcript"].tolist() == [data.decode(i) for i in ids]


# ---- requirements --------------------------------------------------------------------------------

def _closure(module: str) -> set[str]:
    """``module`` and the package's modules it imports at any depth (function bodies too)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((serve.PACKAGE_DIR / f"{name.split('.')[1]}.py").read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                     if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            todo += [n for n in names if n.count(".") == 1 and n.startswith("domains.")
                     and (serve.PACKAGE_DIR / f"{n.split('.')[1]}.py").is_file()]
    return seen


def _module_level_imports(modules: set[str]) -> set[str]:
    """Top-level names of third-party modules imported at module level (what importing needs)."""
    out = set()
    for name in modules:
        for node in ast.parse((serve.PACKAGE_DIR / f"{name.split('.')[1]}.py").read_text()).body:
            if isinstance(node, ast.Import):
                out.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.add(node.module.split(".")[0])
    return {n for n in out if n not in sys.stdlib_module_names and n not in ("domains", "__future__")}


@pytest.mark.parametrize("domain", sorted(serve.ADAPTERS))
def test_adapter_requirements_cover_its_imports(domain):
    dists = importlib.metadata.packages_distributions()
    needed = {d for name in _module_level_imports(_closure(serve.ADAPTERS[domain].module)) for d in dists[name]}
    assert needed <= set(serve.requirements(domain)), needed - set(serve.requirements(domain))


def test_every_domain_has_an_adapter():
    assert set(domains.REGISTRY) == set(serve.ADAPTERS)
    with pytest.raises(ValueError, match="no registered-model adapter"):
        serve.adapter("nope")
