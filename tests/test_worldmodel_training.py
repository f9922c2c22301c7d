"""Optimisation, checkpoints, resuming and the CLI of the world model (tiny sizes, CPU, seconds)."""

from __future__ import annotations

import json
import re
import shutil
from itertools import islice

import pytest
import torch
from worldmodel_synthetic import MovingSquareClips

from armworld.cli import build_parser, main
from armworld.worldmodel.checkpoint import (
    CheckpointError,
    describe_data,
    export_checkpoint,
    file_sha256,
    load_encoder,
    load_world_model,
    newest_valid_checkpoint,
    read_checkpoint,
    remove_leftovers,
    save_checkpoint,
)
from armworld.worldmodel.encoder import PRESETS, FrameEncoder
from armworld.worldmodel.engine import Dist, LoopConfig, batches, fit, learning_rate, make_optimizer, place_data
from armworld.worldmodel.predictor import ACPredictor
from armworld.worldmodel.pretrain import JEPA
from armworld.worldmodel.train import ACTraining, TrainConfig, build_world_model, predictor_config
from armworld.worldmodel.world_model import WorldModel

LOOP = dict(batch_size=4, progress=False, eval_batches=1, warmup_steps=1)


def new_world_model(seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    encoder = FrameEncoder(PRESETS["tiny"])
    return WorldModel(encoder, ACPredictor(predictor_config(encoder, "tiny")))


def snapshot(root) -> dict[str, bytes | None]:
    """Every entry under ``root`` (directories as None) with its bytes: to show nothing changed."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def trajectory_files(tmp_path, count: int) -> list[str]:
    """``count`` small HDF5 trajectory files with different contents."""
    from datasets_helpers import ENV_ARGS, synthetic_episode

    from armworld.datasets.hdf5 import TrajectoryWriter

    paths = []
    for i in range(count):
        paths.append(str(tmp_path / f"d{i}.h5"))
        with TrajectoryWriter(paths[-1], ENV_ARGS) as writer:
            writer.append(synthetic_episode(8, seed=i))
    return paths


def batch_of(dataset, n: int) -> dict[str, torch.Tensor]:
    return {k: torch.stack([dataset[i][k] for i in range(n)]) for k in dataset[0]}


def optimise(task, batch, steps: int, lr: float) -> tuple[float, float]:
    cfg = LoopConfig(steps=steps, lr=lr, start_lr=lr, warmup_steps=0, weight_decay=0.0)
    opt = make_optimizer(task, cfg)
    first = last = None
    for _ in range(steps):
        loss, _ = task(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        task.after_step()
        last = loss.item()
        first = last if first is None else first
    return first, last


def test_predictor_training_reduces_the_loss_and_freezes_the_encoder():
    task = ACTraining(new_world_model(), rollout_steps=2).train()
    encoder_before = {k: v.clone() for k, v in task.model.encoder.state_dict().items()}
    first, last = optimise(task, batch_of(MovingSquareClips(4, clip_len=4), 4), steps=12, lr=2e-3)
    assert last < 0.7 * first
    assert all(torch.equal(v, task.model.encoder.state_dict()[k]) for k, v in encoder_before.items())


def test_jepa_pretraining_reduces_the_loss_and_moves_the_ema_target():
    torch.manual_seed(0)
    task = JEPA(FrameEncoder(PRESETS["tiny"]), ema=0.9).train()
    target_before = [p.clone() for p in task.target.parameters()]
    first, last = optimise(task, batch_of(MovingSquareClips(2, clip_len=8, frames_only=True), 2), steps=8, lr=1e-3)
    assert last < first
    assert not all(torch.equal(a, b) for a, b in zip(target_before, task.target.parameters()))
    assert all(not p.requires_grad for p in task.target.parameters())


def test_learning_rate_schedule():
    cfg = LoopConfig(steps=100, lr=1e-3, start_lr=1e-4, final_lr=0.0, warmup_steps=10)
    assert learning_rate(0, cfg) == pytest.approx(1e-4)
    assert learning_rate(10, cfg) == pytest.approx(1e-3)
    assert learning_rate(100, cfg) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(50, cfg) < learning_rate(20, cfg)
    with pytest.raises(ValueError):
        TrainConfig(clip_len=3, rollout_steps=3)
    for name in ("log_every", "eval_every", "save_every", "keep_checkpoints"):
        flag = "--" + name.replace("_", "-")
        with pytest.raises(ValueError, match=re.escape(f"{name} ({flag}): expected an integer >= 1, got '0'")):
            LoopConfig(**{name: 0})


def test_checkpoint_round_trip_resume_and_init(tmp_path):
    train, valid = MovingSquareClips(8, clip_len=4), MovingSquareClips(4, clip_len=4, seed=1)
    task = ACTraining(new_world_model())
    path = fit(task, LoopConfig(steps=2, save_every=1, **LOOP), train, valid, tmp_path / "wm")
    assert path.name == "step-000002" and json.loads((tmp_path / "wm" / "latest").read_text())["checkpoint"] == path.name
    meta = read_checkpoint(tmp_path / "wm").metadata
    assert meta["step"] == 2 and "loss" in meta["valid_metrics"] and "copy_last_baseline" in meta["valid_metrics"]

    loaded = load_world_model(tmp_path / "wm")
    z, s, a = torch.randn(1, 2, 16, 128), torch.randn(1, 2, 7), torch.randn(1, 2, 7)
    with torch.no_grad():
        assert torch.equal(loaded.predict(z, s, a), task.model.eval().predict(z, s, a))

    resumed = ACTraining(new_world_model(seed=1))
    path = fit(resumed, LoopConfig(steps=3, **LOOP), train, valid, tmp_path / "wm")
    assert read_checkpoint(path).metadata["step"] == 3
    assert sorted(p.name for p in (tmp_path / "wm").glob("step-*")) == ["step-000002", "step-000003"]

    init = build_world_model(encoder=None, init=str(tmp_path / "wm"), predictor=None)
    assert torch.equal(init.predictor.predictor_proj.weight, load_world_model(path).predictor.predictor_proj.weight)
    with pytest.raises(ValueError, match="give one of"):
        build_world_model(encoder=str(tmp_path / "wm"), init=str(tmp_path / "wm"), predictor=None)
    with pytest.raises(ValueError, match="--init brings its own"):
        build_world_model(encoder=None, init=str(tmp_path / "wm"), predictor="tiny")


def clip_files(tmp_path) -> list[str]:
    """Two files of 3 episodes each (1 validation episode in all), 32 px frames."""
    from datasets_helpers import ENV_ARGS, synthetic_episode

    from armworld.datasets.hdf5 import TrajectoryWriter

    paths = [str(tmp_path / "a.h5"), str(tmp_path / "b.h5")]
    for i, path in enumerate(paths):
        with TrajectoryWriter(path, ENV_ARGS) as writer:
            for seed in range(3):
                writer.append(synthetic_episode(9, seed=10 * i + seed))
    return paths


def test_in_memory_and_streamed_data_give_the_same_batches_in_the_same_order(tmp_path):
    from armworld.datasets.clips import ClipDataset

    paths = clip_files(tmp_path)
    streamed, in_memory = ClipDataset(paths, 4, split=None), ClipDataset(paths, 4, split=None)
    cfg, dist = LoopConfig(batch_size=5, seed=3, data_in_memory="yes"), Dist(0, 1, torch.device("cpu"))
    assert place_data([in_memory], cfg, dist)["in_memory"] == "cpu"
    assert place_data([streamed], LoopConfig(data_in_memory="no"), dist)["in_memory"] is None
    epochs = 2 * len(streamed) // 5 + 1  # into the third epoch
    for a, b in zip(islice(batches(streamed, cfg, dist, 0), epochs), islice(batches(in_memory, cfg, dist, 0), epochs)):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_auto_streams_what_exceeds_the_memory_budget_and_yes_loads_it_anyway(tmp_path, monkeypatch):
    from armworld.datasets.clips import FrameDataset
    from armworld.worldmodel import engine

    paths, dist = clip_files(tmp_path), Dist(0, 1, torch.device("cpu"))
    needed = FrameDataset(paths, 4).memory_bytes()
    monkeypatch.setattr(engine, "_available_host_memory", lambda: 2 * needed)  # a budget of exactly `needed`
    fits = FrameDataset(paths, 4)
    assert place_data([fits], LoopConfig(), dist)["in_memory"] == "cpu" and fits.memory_device == torch.device("cpu")
    monkeypatch.setattr(engine, "_available_host_memory", lambda: needed)
    too_big = FrameDataset(paths, 4)
    placed = place_data([too_big], LoopConfig(), dist)
    assert placed["in_memory"] is None and too_big.memory_device is None and "exceeds the host budget" in placed["why"]
    assert place_data([too_big], LoopConfig(data_in_memory="yes"), dist)["in_memory"] == "cpu"
    with pytest.raises(ValueError, match="data_in_memory"):
        LoopConfig(data_in_memory="maybe")


@pytest.mark.parametrize("kind", ["encoder", "world_model"])
def test_training_from_memory_and_from_the_files_trains_the_same_weights(tmp_path, kind):
    from armworld.worldmodel.pretrain import PretrainConfig, pretrain
    from armworld.worldmodel.train import train

    paths = clip_files(tmp_path)
    weights, pipelines = [], []
    for mode in ("no", "yes"):
        loop = LoopConfig(steps=2, data_in_memory=mode, device="cpu", **LOOP)
        out = tmp_path / mode
        if kind == "encoder":
            pretrain(PretrainConfig(clip_len=4, preset="tiny", loop=loop), paths, out)
        else:
            train(TrainConfig(clip_len=3, loop=loop), new_world_model(), paths, out)
        ckpt = read_checkpoint(out)
        assert ckpt.config["train"]["data_in_memory"] == mode
        weights.append(ckpt.state_dict)
        pipelines.append(ckpt.metadata["data_pipeline"])
    assert [p["in_memory"] for p in pipelines] == [None, "cpu"]
    assert pipelines[0]["decoded_bytes"] == pipelines[1]["decoded_bytes"] > 0
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # The data's place may change on resume: it does not change what is trained.
    loop = LoopConfig(steps=3, data_in_memory="auto", device="cpu", **LOOP)
    if kind == "encoder":
        assert pretrain(PretrainConfig(clip_len=4, preset="tiny", loop=loop), paths, tmp_path / "no").name == "step-000003"
    else:
        assert train(TrainConfig(clip_len=3, loop=loop), new_world_model(), paths, tmp_path / "no").name == "step-000003"


def test_encoder_run_feeds_the_predictor(tmp_path):
    frames_only = MovingSquareClips(4, clip_len=8, frames_only=True)
    torch.manual_seed(0)
    jepa = JEPA(FrameEncoder(PRESETS["tiny"]))
    fit(jepa, LoopConfig(steps=1, **LOOP), frames_only, None, tmp_path / "enc")
    encoder = load_encoder(tmp_path / "enc")
    assert all(torch.equal(a, b) for a, b in zip(encoder.parameters(), jepa.target.parameters()))
    wm = build_world_model(encoder=str(tmp_path / "enc"), init=None, predictor="tiny")
    assert torch.equal(wm.encoder.vjepa.encoder.layernorm.weight, jepa.target.vjepa.encoder.layernorm.weight)
    with pytest.raises(CheckpointError, match="not a world model"):
        load_world_model(tmp_path / "enc")


def test_broken_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_world_model(tmp_path / "missing")
    task = ACTraining(new_world_model())
    good = fit(task, LoopConfig(steps=1, **LOOP), MovingSquareClips(4), None, tmp_path / "wm")

    def copy(name):
        dst = tmp_path / name
        shutil.copytree(good, dst)
        return dst

    truncated = copy("truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_world_model(truncated)

    altered = copy("altered")
    data = bytearray((altered / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (altered / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_world_model(altered)

    incomplete = copy("incomplete")
    (incomplete / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_world_model(incomplete)

    mismatched = copy("mismatched")
    config = json.loads((mismatched / "config.json").read_text())
    config["predictor"]["depth"] = 5
    (mismatched / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="missing 12 keys"):
        load_world_model(mismatched)

    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither a run directory"):
        load_world_model(tmp_path / "empty")
    assert not list((tmp_path / "wm").glob(".step-*"))  # no temporary directories left behind


def test_resuming_skips_checkpoints_that_fail_verification(tmp_path):
    run = tmp_path / "wm"
    fit(ACTraining(new_world_model()), LoopConfig(steps=2, save_every=1, **LOOP), MovingSquareClips(4), None, run)
    assert newest_valid_checkpoint(tmp_path / "fresh") is None
    ckpt, state = newest_valid_checkpoint(run)
    assert ckpt.path.name == "step-000002" and state["step"] == 2
    assert not list(run.glob(".*"))  # no temporary or set-aside directories left behind

    trainer = run / "step-000002" / "trainer.pt"
    trainer.write_bytes(trainer.read_bytes()[:-1] + b"x")
    with pytest.warns(UserWarning, match="skipping checkpoint .*step-000002.*trainer.pt is corrupt"):
        ckpt, state = newest_valid_checkpoint(run)
    assert ckpt.path.name == "step-000001" and state["step"] == 1

    shutil.rmtree(run / "step-000002")  # `latest` names a checkpoint that is gone: resuming does not read it
    assert newest_valid_checkpoint(run)[0].path.name == "step-000001"

    (run / "step-000001" / "metadata.json").unlink()
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="none verifies.*metadata.json is missing"):
        newest_valid_checkpoint(run)


def test_resuming_with_other_settings_is_refused_and_extending_the_run_is_not(tmp_path):
    run, data = tmp_path / "wm", trajectory_files(tmp_path, 2)
    extra = {"camera": "front", "clip_len": 4, "frame_skip": 1, "rollout_steps": 2}

    def resume(loop: dict, extra_config: dict = extra, data_files: list[str] = data[:1]):
        cfg = LoopConfig(**{**LOOP, "steps": 1, **loop})
        return fit(ACTraining(new_world_model()), cfg, MovingSquareClips(4), None, run, data_files, extra_config)

    resume({})
    before = snapshot(run)
    with pytest.raises(ValueError) as refused:
        resume({"seed": 1, "lr": 1e-3}, dict(extra, camera="top", rollout_steps=1), data[1:])
    message = str(refused.value)
    for change in ("camera: 'front' -> 'top'", "rollout_steps: 2 -> 1", "seed: 0 -> 1", "lr: 0.000425 -> 0.001"):
        assert change in message
    old, new = describe_data(data[:1])[0], describe_data(data[1:])[0]
    assert f"data: [{old['path']} (sha256 {old['sha256'][:12]})] -> [{new['path']} (sha256 {new['sha256'][:12]})]" in message
    assert "give a new --out" in message and "batch_size" not in message
    assert "(only --steps, --log-every, --eval-every, --eval-batches, --save-every, --keep-checkpoints, --workers, " \
        "--device, --data-in-memory, --no-progress may change)" in message  # every flag a resumed run may change
    with pytest.raises(ValueError, match=r"holds a run with other settings \(batch_size: 4 -> 2\)"):
        resume({"batch_size": 2})
    assert snapshot(run) == before  # nothing trained or written

    path = resume({"steps": 2, "save_every": 1, "eval_every": 1, "log_every": 1})  # a longer run may resume
    assert read_checkpoint(path).metadata["step"] == 2


def test_saving_removes_leftovers_and_superseded_checkpoints(tmp_path):
    run = tmp_path / "wm"
    fit(ACTraining(new_world_model()), LoopConfig(steps=1, **LOOP), MovingSquareClips(4), None, run)
    # What a kill during a save leaves (a temporary checkpoint, one set aside, a temporary
    # `latest`), beside hidden things of the user's own that must stay.
    leftovers = [run / ".step-000002.abcd_123", run / ".step-000001.old.k2j4h5g6", run / ".latest.q1w2e3r4"]
    for p in leftovers[:2]:
        p.mkdir()
        (p / "model.safetensors").write_bytes(b"partial")
    leftovers[2].write_text("{")
    kept = [run / ".notes", run / ".step-000002.mine", run / "step-notes"]
    kept[0].write_text("mine")
    kept[1].mkdir()
    kept[2].mkdir()

    path = fit(ACTraining(new_world_model()), LoopConfig(steps=1, **LOOP), MovingSquareClips(4), None, run)
    assert path == run / "step-000001"  # resumed, nothing left to train, nothing saved
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in kept)

    # Steps 3 and 4 of an earlier timeline (say resume found them unverifiable and went back
    # to step 2) are superseded once step 3 is saved again; the older ones are kept.
    config, weights = {"kind": "world_model"}, {"w": torch.zeros(1)}
    for step in (2, 3, 4):
        save_checkpoint(run, step, config, weights, {}, keep=4)
    leftovers[0].mkdir()
    save_checkpoint(run, 3, config, weights, {}, keep=2)
    assert sorted(p.name for p in run.glob("step-*")) == ["step-000002", "step-000003", "step-notes"]
    assert read_checkpoint(run).path.name == "step-000003" and not leftovers[0].exists()
    with pytest.raises(ValueError, match="keep must be at least 1"):
        save_checkpoint(run, 5, config, weights, {}, keep=0)


def test_resume_takes_the_newest_valid_checkpoint_and_puts_back_one_set_aside(tmp_path):
    run = tmp_path / "wm"
    config, weights = {"kind": "world_model"}, {"w": torch.zeros(1)}
    for step in (1, 2):
        save_checkpoint(run, step, config, weights, {}, keep=4)
    (run / "latest").write_text(json.dumps({"checkpoint": "step-000001"}))  # killed before `latest` moved on
    assert newest_valid_checkpoint(run)[0].metadata["step"] == 2
    aside = run / ".step-000002.old.abcd1234"  # killed while step 2 was being written again
    aside.mkdir()
    (run / "step-000002").rename(aside / "step-000002")
    remove_leftovers(run)
    assert not aside.exists() and newest_valid_checkpoint(run)[0].metadata["step"] == 2  # the only copy, put back


def test_train_from_init_keeps_its_camera_and_records_lineage(tmp_path, capsys):
    from datasets_helpers import ENV_ARGS, synthetic_episode

    from armworld.datasets.hdf5 import TrajectoryWriter

    data = str(tmp_path / "d.h5")
    with TrajectoryWriter(data, ENV_ARGS) as writer:
        for seed in range(2):
            writer.append(synthetic_episode(8, seed))  # 32 px `front` and `wrist` frames
    jepa = JEPA(FrameEncoder(PRESETS["tiny"]))
    config = dict(jepa.checkpoint_config(), train={"camera": "wrist", "frame_skip": 1})
    save_checkpoint(tmp_path / "enc", 3, config, jepa.checkpoint_state(), {})
    parser = build_parser()

    def train(*extra: str) -> int:
        args = parser.parse_args(["train", "--data", data, "--steps", "1", "--batch-size", "4", "--device", "cpu", *extra])
        return args.func(args)

    assert train("--encoder", str(tmp_path / "enc"), "--frame-skip", "2", "--out", str(tmp_path / "wm")) == 0
    base = read_checkpoint(tmp_path / "wm")
    assert base.config["train"]["camera"] == "wrist"  # the encoder run's camera, not `front`
    enc = tmp_path / "enc" / "step-000003"
    encoder = {"path": str(enc), "step": 3, "weights_sha256": file_sha256(enc / "model.safetensors")}
    assert base.metadata["encoder"] == encoder and "init" not in base.metadata

    assert train("--init", str(tmp_path / "wm"), "--out", str(tmp_path / "ft")) == 0
    tuned = read_checkpoint(tmp_path / "ft")
    assert tuned.config["train"]["camera"] == "wrist" and tuned.config["train"]["frame_skip"] == 2
    assert tuned.config["train"]["predictor"] is None
    assert tuned.metadata["init"] == {"path": str(base.path), "step": 1, "weights_sha256": base.metadata["weights_sha256"]}
    assert tuned.metadata["encoder"] == encoder

    capsys.readouterr()
    refusals = {
        "--camera front conflicts with the --init model, trained with --camera wrist": ("--camera", "front"),
        "--frame-skip 1 conflicts": ("--frame-skip", "1"),
        "--init brings its own: leave --predictor out": ("--predictor", "tiny"),
    }
    for message, extra in refusals.items():
        assert train("--init", str(tmp_path / "wm"), *extra, "--out", str(tmp_path / "bad")) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_export_half_precision_weights_that_load_and_predict_alike(tmp_path):
    task = ACTraining(new_world_model())
    source = fit(task, LoopConfig(steps=1, **LOOP), MovingSquareClips(4), None, tmp_path / "wm")
    out = export_checkpoint(tmp_path / "wm", tmp_path / "ship", "float16")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metadata.json", "model.safetensors"]
    shipped, original = read_checkpoint(out), read_checkpoint(source)
    assert all(v.dtype == torch.float16 for v in shipped.state_dict.values() if v.is_floating_point())
    assert shipped.metadata["weights_bytes"] < 0.55 * original.metadata["weights_bytes"]
    assert shipped.metadata["exported_from"]["weights_sha256"] == original.metadata["weights_sha256"]
    assert shipped.metadata["step"] == original.metadata["step"] == 1 and shipped.metadata["dtype"] == "float16"

    loaded, reference = load_world_model(out), task.model.eval()
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    z, s, a = torch.randn(1, 2, 16, 128), torch.randn(1, 2, 7), torch.randn(1, 2, 7)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(z, s, a), reference.predict(z, s, a), atol=2e-2, rtol=0)

    export_checkpoint(tmp_path / "wm", out, "float32")  # replaces the previous export in place
    assert read_checkpoint(out).metadata["dtype"] == "float32"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ship")]  # no temporary directories left
    with pytest.raises(ValueError, match="choose one of"):
        export_checkpoint(tmp_path / "wm", tmp_path / "bad", "int8")
    with pytest.raises(CheckpointError, match="does not exist"):
        export_checkpoint(tmp_path / "missing", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_export_replaces_only_an_earlier_export(tmp_path, capsys):
    runs = tmp_path / "runs"
    fit(ACTraining(new_world_model()), LoopConfig(steps=1, **LOOP), MovingSquareClips(4), None, runs / "wm")
    (runs / "notes.txt").write_text("not a checkpoint")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text("{}")
    (tmp_path / "file").write_text("a file")
    shutil.copytree(runs / "wm", tmp_path / "other-run")
    shutil.copytree(runs / "wm" / "step-000001", tmp_path / "a-checkpoint")  # has trainer.pt
    before = snapshot(tmp_path)

    for out in (runs, runs / "wm", runs / "wm" / "step-000001", runs / "wm" / "ship"):
        with pytest.raises(CheckpointError, match="it is, holds or lies inside the checkpoint being exported"):
            export_checkpoint(runs / "wm", out)
    for out in ("other", "file", "other-run", "a-checkpoint"):
        with pytest.raises(CheckpointError, match="is not an earlier export .*choose a new path"):
            export_checkpoint(runs / "wm", tmp_path / out)
    args = build_parser().parse_args(["export", str(runs / "wm"), "--out", str(runs)])
    assert args.func(args) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot export into {runs}: ")
    assert snapshot(tmp_path) == before  # nothing deleted, moved or left behind

    (tmp_path / "empty").mkdir()
    for _ in range(2):  # a new or empty directory, then the export just written
        export_checkpoint(runs / "wm", tmp_path / "empty")
        assert read_checkpoint(tmp_path / "empty").metadata["exported_from"]["step"] == 1


def test_cli_verbs_report_ordinary_mistakes_in_one_line(tmp_path, capsys):
    data = trajectory_files(tmp_path, 1)[0]
    jepa = JEPA(FrameEncoder(PRESETS["tiny"]))
    save_checkpoint(tmp_path / "enc", 1, jepa.checkpoint_config(), jepa.checkpoint_state(), {})
    common = ["--steps", "1", "--device", "cpu", "--out", str(tmp_path / "run")]
    cases = {
        "clip_len (--clip-len) must be a positive multiple of the encoder's tubelet size 2, got 7":
            ["pretrain", "--data", data, "--clip-len", "7"],
        "argument --save-every: expected an integer >= 1, got '0'": ["pretrain", "--data", data, "--save-every", "0"],
        f"no checkpoint at {tmp_path / 'missing'}": ["train", "--data", data, "--encoder", str(tmp_path / "missing")],
        f"{tmp_path / 'missing.h5'}: no such file": ["train", "--data", str(tmp_path / "missing.h5"),
                                                      "--encoder", str(tmp_path / "enc")],
        "give one of --encoder": ["train", "--data", data, "--encoder", str(tmp_path / "enc"),
                                  "--init", str(tmp_path / "enc")],
        "unknown encoder preset 'huge'": ["train", "--data", data, "--preset", "huge"],
    }
    for message, argv in cases.items():
        assert main(argv + common) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "run").exists()


def test_cli_verbs_parse():
    parser = build_parser()
    args = parser.parse_args(["pretrain", "--data", "a.h5", "b.h5", "--preset", "tiny", "--steps", "5", "--out", "runs/enc"])
    assert args.data == ["a.h5", "b.h5"] and args.steps == 5 and callable(args.func)
    args = parser.parse_args(["train", "--data", "a.h5", "--encoder", "runs/enc", "--steps", "7", "--out", "runs/wm",
                              "--init", "runs/wm0"])
    assert args.encoder == "runs/enc" and args.init == "runs/wm0" and args.rollout_steps == 2 and callable(args.func)
