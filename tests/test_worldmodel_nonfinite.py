"""Nothing non-finite is trained on, saved, loaded or exported, and malformed checkpoint files
are named (tiny models, CPU, a few steps each)."""

from __future__ import annotations

import json
import math
import shutil

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from worldmodel_synthetic import MovingSquareClips

from armworld.cli import main as armworld
from armworld.datasets.hdf5 import DatasetError
from armworld.worldmodel.checkpoint import (
    CheckpointError,
    export_checkpoint,
    file_sha256,
    load_encoder,
    load_world_model,
    newest_valid_checkpoint,
    non_finite,
    read_checkpoint,
    save_checkpoint,
)
from armworld.worldmodel.encoder import PRESETS, FrameEncoder
from armworld.worldmodel.engine import Diverged, Dist, LoopConfig, check_finite_batch, fit
from armworld.worldmodel.predictor import ACPredictor
from armworld.worldmodel.pretrain import JEPA
from armworld.worldmodel.train import ACTraining, predictor_config
from armworld.worldmodel.world_model import WorldModel

LOOP = dict(batch_size=4, progress=False, eval_batches=1, warmup_steps=1)


def new_task() -> ACTraining:
    torch.manual_seed(0)
    encoder = FrameEncoder(PRESETS["tiny"])
    return ACTraining(WorldModel(encoder, ACPredictor(predictor_config(encoder, "tiny"))))


def trained_run(tmp_path, steps: int = 1):
    return fit(new_task(), LoopConfig(steps=steps, save_every=1, **LOOP), MovingSquareClips(8), None, tmp_path / "wm")


def rewrite_weights(checkpoint, change) -> None:
    """Apply ``change`` to the weights of ``checkpoint`` and record their new sha256, as a writer
    without these checks would have: the checkpoint still verifies."""
    weights = checkpoint / "model.safetensors"
    tensors = load_file(weights)
    change(tensors)
    save_file(tensors, weights)
    meta = json.loads((checkpoint / "metadata.json").read_text())
    meta.update(weights_bytes=weights.stat().st_size, weights_sha256=file_sha256(weights))
    (checkpoint / "metadata.json").write_text(json.dumps(meta))


def finite_loadable_checkpoints(run) -> list[int]:
    steps = []
    for path in sorted(run.glob("step-*")):
        ckpt = read_checkpoint(path)
        assert not non_finite(ckpt.state_dict) and not non_finite(ckpt.trainer_state())
        load_world_model(path)
        steps.append(ckpt.metadata["step"])
    return steps


def nan_loss(task, step):
    """``task``'s forward, with the loss and ``loss_teacher`` NaN from call ``step`` on."""
    forward, calls = task.forward, []

    def patched(batch):
        loss, metrics = forward(batch)
        calls.append(1)
        if len(calls) >= step:
            loss, metrics = loss * math.nan, dict(metrics, loss_teacher=math.nan)
        return loss, metrics

    return patched


def inf_gradient(task, step):
    """``task``'s forward, with a finite loss whose gradient is NaN from call ``step`` on
    (d sqrt(x) / dx is inf at x = 0, times 0)."""
    forward, calls = task.forward, []

    def patched(batch):
        loss, metrics = forward(batch)
        calls.append(1)
        if len(calls) >= step:
            weight = task.model.predictor.predictor_proj.weight
            loss = loss + torch.sqrt((weight * 0).sum())
        return loss, metrics

    return patched


@pytest.mark.parametrize("inject, term", [(nan_loss, "loss_teacher = nan, loss = nan"), (inf_gradient, "grad_norm = nan")])
def test_a_non_finite_loss_or_gradient_stops_the_run_at_that_step(tmp_path, inject, term):
    task = new_task()
    task.forward = inject(task, step=3)
    with pytest.raises(Diverged, match=f"training diverged at step 3: .*{term}.*lower --lr"):
        fit(task, LoopConfig(steps=5, save_every=1, keep_checkpoints=5, **LOOP), MovingSquareClips(8), None,
            tmp_path / "wm")
    assert finite_loadable_checkpoints(tmp_path / "wm") == [1, 2]  # step 3 was never applied nor saved
    assert not non_finite(dict(task.named_parameters()))


def test_training_data_with_nan_is_refused_naming_file_and_key(tmp_path, capsys):
    clips = MovingSquareClips(8)
    for item in clips.items:
        item["proprio"][1, 0] = math.nan
    with pytest.raises(DatasetError, match="step 1: the batch's 'proprio' holds NaN or inf"):
        fit(new_task(), LoopConfig(steps=3, save_every=1, **LOOP), clips, None, tmp_path / "wm")
    assert not list((tmp_path / "wm").glob("step-*"))

    from datasets_helpers import ENV_ARGS, synthetic_episode

    from armworld.datasets.hdf5 import TrajectoryWriter

    data = str(tmp_path / "d.h5")
    with TrajectoryWriter(data, ENV_ARGS) as writer:
        for seed in range(2):
            writer.append(synthetic_episode(8, seed))
    with h5py.File(data, "r+") as f:
        f["data/demo_1/obs/proprio"][3, 2] = np.inf
    jepa = JEPA(FrameEncoder(PRESETS["tiny"]))
    save_checkpoint(tmp_path / "enc", 1, jepa.checkpoint_config(), jepa.checkpoint_state(), {})
    argv = ["train", "--data", data, "--encoder", str(tmp_path / "enc"), "--steps", "1", "--batch-size", "2",
            "--device", "cpu", "--out", str(tmp_path / "run")]
    capsys.readouterr()
    assert armworld(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {data}: demo_1: 'obs/proprio' holds ")  # the clip dataset's check, on opening
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_check_finite_batch_alone_names_the_key_and_passes_integers_and_finite_floats():
    single = Dist(0, 1, torch.device("cpu"))
    batch = {"frames": torch.zeros(2, 3), "index": torch.tensor([1, 2])}
    assert check_finite_batch(batch, "step 1", single) is batch
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(DatasetError, match="^step 4: the batch's 'actions' holds NaN or inf"):
            check_finite_batch(dict(batch, actions=torch.tensor([0.0, bad])), "step 4", single)


def test_non_finite_weights_or_optimizer_state_are_never_saved(tmp_path):
    config = {"kind": "world_model"}
    with pytest.raises(CheckpointError, match=r"refusing to save .*step-000001: its weights: NaN or inf in 1 tensor\(s\) \(e.g. \['b'\]\)"):
        save_checkpoint(tmp_path / "run", 1, config, {"a": torch.zeros(2), "b": torch.tensor([1.0, math.inf])}, {})
    optimizer = {"state": {0: {"step": torch.tensor(1.0), "exp_avg": torch.tensor([math.nan])}}, "param_groups": []}
    with pytest.raises(CheckpointError, match=r"its optimizer state: .*\['optimizer.state.0.exp_avg'\]"):
        save_checkpoint(tmp_path / "run", 1, config, {"a": torch.zeros(2)}, {}, {"optimizer": optimizer, "step": 1})
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_holding_nan_is_refused_by_load_resume_and_export(tmp_path, capsys):
    run = tmp_path / "wm"
    trained_run(tmp_path, steps=2)
    rewrite_weights(run / "step-000002", lambda t: t["predictor.predictor_proj.weight"].view(-1)[7].fill_(math.nan))
    message = r"step-000002/model.safetensors: NaN or inf in 1 tensor\(s\) \(e.g. \['predictor.predictor_proj.weight'\]\)"
    with pytest.raises(CheckpointError, match=message + "; a run that diverged wrote it"):
        load_world_model(run)
    with pytest.raises(CheckpointError, match=message):
        load_encoder(run)
    with pytest.warns(UserWarning, match=message):
        assert newest_valid_checkpoint(run)[0].path.name == "step-000001"  # resuming steps back over it

    capsys.readouterr()
    assert armworld(["export", str(run), "--out", str(tmp_path / "ship")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "NaN or inf in 1 tensor(s)" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wm"]  # nothing written, no temporary left

    shutil.rmtree(run / "step-000002")
    trainer = run / "step-000001" / "trainer.pt"
    state = torch.load(trainer, weights_only=True)
    next(iter(state["optimizer"]["state"].values()))["exp_avg_sq"].fill_(math.inf)
    torch.save(state, trainer)
    meta = json.loads((run / "step-000001" / "metadata.json").read_text())
    (run / "step-000001" / "metadata.json").write_text(json.dumps(dict(meta, trainer_sha256=file_sha256(trainer))))
    with pytest.warns(UserWarning, match=r"trainer.pt: NaN or inf in 1 tensor\(s\) \(e.g. \['optimizer.state.0.exp_avg_sq'"), \
            pytest.raises(CheckpointError, match="none verifies"):
        newest_valid_checkpoint(run)


def test_export_refuses_what_would_not_load_and_writes_nothing(tmp_path):
    source = trained_run(tmp_path)

    def variant(name: str) -> object:
        shutil.copytree(source, tmp_path / name)
        return tmp_path / name

    mismatched = variant("mismatched")
    config = json.loads((mismatched / "config.json").read_text())
    (mismatched / "config.json").write_text(json.dumps(dict(config, predictor=dict(config["predictor"], depth=5))))
    missing = variant("missing")
    rewrite_weights(missing, lambda t: t.pop("predictor.predictor_proj.weight"))
    bad_size = variant("bad-size")
    (bad_size / "config.json").write_text(json.dumps(dict(config, encoder=dict(config["encoder"], hidden_size="big"))))
    overflow = variant("overflow")
    rewrite_weights(overflow, lambda t: t["predictor.predictor_proj.weight"].view(-1)[0].fill_(1e6))

    refusals = {
        mismatched: "does not match the model it configures: missing 12 keys",
        missing: r"missing 1 keys \(e.g. \['predictor.predictor_proj.weight'\]\)",
        bad_size: "bad-size/config.json: 'encoder' is not a valid encoder config",
        overflow: r"cannot export .*overflow as float16: its weights: NaN or inf in 1 tensor\(s\) .*export as float32",
    }
    for checkpoint, message in refusals.items():
        with pytest.raises(CheckpointError, match=message):
            export_checkpoint(checkpoint, tmp_path / "ship")
        assert not (tmp_path / "ship").exists() and not list(tmp_path.glob(".ship*"))
    assert read_checkpoint(export_checkpoint(overflow, tmp_path / "ship", "float32")).metadata["dtype"] == "float32"


def malformed(tmp_path, name: str, text: str):
    """A copy of a trained checkpoint whose file ``name`` holds ``text``."""
    run = tmp_path / "run"
    if not run.exists():
        shutil.copytree(trained_run(tmp_path).parent, run)
    (run / ("latest" if name == "latest" else f"step-000001/{name}")).write_text(text)
    return run


@pytest.mark.parametrize("name, text, message", [
    ("config.json", "[1, 2]", "config.json holds a list, expected a JSON object"),
    ("config.json", '{"kind": 3}', "config.json: 'kind' is an integer, expected a string"),
    ("config.json", '{"kind": "world_model", "encoder": [], "predictor": {}}', "config.json: 'encoder' is a list, expected an object"),
    ("config.json", '{"kind": "world_model", "predictor": {}}', "config.json: no 'encoder', expected an object"),
    ("config.json", '{"kind": "world_model"', "config.json is not readable JSON"),
    ("metadata.json", "7", "metadata.json holds an integer, expected a JSON object"),
    ("metadata.json", '{"step": "one"}', "metadata.json: 'step' is a string, expected an integer"),
    ("metadata.json", '{"data": [3]}', "metadata.json: 'data'.0. is an integer, expected an object with strings 'path' and 'sha256'"),
    ("latest", "[]", "latest names no checkpoint of .*run: expected .*step-XXXXXX.*one of its checkpoints .step-000001., got \\[\\]"),
    ("latest", "42", "latest names no checkpoint .*got 42"),
    ("latest", '{"checkpoint": 1}', "latest names no checkpoint"),
    ("latest", '{"checkpoint": "step-000009"}', "latest names no checkpoint"),
    ("latest", '{"checkpoint": "../../elsewhere"}', "latest names no checkpoint"),
])
def test_malformed_checkpoint_files_are_named(tmp_path, capsys, name, text, message):
    run = malformed(tmp_path, name, text)
    with pytest.raises(CheckpointError, match=message):
        load_world_model(run)
    capsys.readouterr()
    assert armworld(["export", str(run), "--out", str(tmp_path / "ship")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and not (tmp_path / "ship").exists()


def test_train_names_a_malformed_encoder_config_in_one_line(tmp_path, capsys):
    run = malformed(tmp_path, "config.json", '{"kind": "encoder", "train": ["camera"]}')
    capsys.readouterr()
    assert armworld(["train", "--data", str(tmp_path / "none.h5"), "--encoder", str(run), "--steps", "1",
                     "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "config.json: 'train' is a list, expected an object" in err
