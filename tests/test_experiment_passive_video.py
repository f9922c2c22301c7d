"""`armworld experiment passive-video`: the smoke scale runs end to end, a rerun skips finished
points and redoes an unfinished one, the plans of the real scales hold the issue's points,
and the action data needed to reach a success is read off the curves."""

import dataclasses
import json
import math

import pytest

from armworld.agents import passive_video as pv
from armworld.agents.evaluate import EVAL_SEED_BASE
from armworld.cli import main


def _markers(out):
    return {str(done.parent.relative_to(out)): done.stat().st_mtime_ns for done in out.glob(f"**/{pv.DONE}")}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("pv") / "experiment"
    assert main(["experiment", "passive-video", "--scale", "smoke", "--out", str(out)]) == 0
    return out


def test_smoke_scale_writes_every_point_and_the_results(smoke):
    points = pv.Experiment(pv.SCALES["smoke"], smoke).points()
    assert set(_markers(smoke)) == {p.name for p in points}
    results = json.loads((smoke / "results.json").read_text())
    arms = {(r["arm"], r["budget"]) for r in results["points"]}
    assert arms == {(arm, size * 5) for arm in pv.ARMS for size in (10, 20)} | {("sac-her-state", 50), ("sac-her-state", 100)}
    assert results["pool"] == {**results["pool"], "files": 2, "episodes": 4, "frames": 4 * 6}
    curve = results["curves"][pv.REACH]["image"]["arm1"]
    assert [p["env_steps"] for p in curve] == [50, 100] and all(len(p["wilson_95"]) == 2 for p in curve)
    recorded = {r["budget"]: r["mean_final_distance"] for r in results["points"] if r["arm"] == "arm1" and r["goal"] == "image"}
    assert [p["mean_final_distance"] for p in curve] == pytest.approx([recorded[50], recorded[100]])  # one seed each
    assert (smoke / "success.png").stat().st_size > 0 and "arm1" in (smoke / "results.md").read_text()
    labelled = json.loads((smoke / "data/FrankaReach-A20" / pv.DONE).read_text())["record"]
    assert labelled["episodes"] == 20 and labelled["env_steps"] == 100


def test_a_rerun_skips_finished_points_and_redoes_an_unfinished_one(smoke, capsys):
    before = _markers(smoke)
    redo = "eval/FrankaReach-A10-arm2-s0-image"
    (smoke / redo / pv.DONE).unlink()  # as if the run had been killed before its marker
    assert main(["experiment", "passive-video", "--scale", "smoke", "--out", str(smoke)]) == 0
    after = _markers(smoke)
    assert set(after) == set(before)
    assert [name for name in before if after[name] != before[name]] == [redo]
    assert f"{len(before) - 1} of {len(before)} points were already finished" in capsys.readouterr().out


def test_another_scale_in_the_same_folder_is_refused(smoke, capsys):
    assert main(["experiment", "passive-video", "--scale", "small", "--out", str(smoke), "--only", "pool/*"]) == 1
    assert "other settings" in capsys.readouterr().err


def test_a_manifest_from_before_scales_named_their_planner_reads_as_cem(tmp_path):
    for name in ("small", "full"):
        pv.check_manifest(pv.SCALES[name], tmp_path / name)
        manifest = json.loads((tmp_path / name / pv.MANIFEST).read_text())
        assert manifest["scale"]["planner"] == pv.SCALES[name].planner
        del manifest["scale"]["planner"]  # as written before the field existed, when every scale planned with CEM
        (tmp_path / name / pv.MANIFEST).write_text(json.dumps(manifest))
    pv.check_manifest(pv.SCALES["small"], tmp_path / "small")  # small planned with CEM then and now: resumes
    with pytest.raises(ValueError, match=r"other settings \(planner\)"):
        pv.check_manifest(pv.SCALES["full"], tmp_path / "full")  # full now plans with the default, iCEM


def test_plans_of_the_real_scales_hold_the_issues_points(tmp_path, capsys):
    full = pv.Experiment(pv.SCALES["full"], tmp_path)
    names = [p.name for p in full.points()]
    assert len(set(names)) == len(names)
    assert sum(n.startswith("pool/") for n in names) == 4 * 3 * 2
    assert sum(n.startswith("wm/") for n in names) == 2 * 6 * 3 * 4
    assert sum(n.startswith("eval/") and n.endswith("-subgoals") for n in names) == 6 * 3 * 4  # Push only
    assert pv.SCALES["full"].rl_budgets(pv.PUSH)[-1] >= 300_000
    assert pv.SCALES["full"].rl_budgets(pv.REACH)[:2] == [25 * 30, 50 * 30]
    order = {name: i for i, name in enumerate(names)}
    assert all(order[need] < order[p.name] for p in full.points() for need in p.needs)
    last_pool_seed = pv.POOL_SEED_BASE + pv.POOL_SEED_STRIDE * 24
    assert max(pv.SCALES["full"].sizes) <= pv.POOL_SEED_BASE and last_pool_seed <= EVAL_SEED_BASE
    only = pv.select(full.points(), ["eval/FrankaPush-A25-arm1-s1-image"])
    assert {p.stage for p in only} == {"pool", "data", "encoder", "wm", "eval"} and len(only) == 24 + 1 + 1 + 1 + 1
    assert main(["experiment", "passive-video", "--scale", "small", "--out", str(tmp_path / "x"), "--plan"]) == 0
    assert "rough total left" in capsys.readouterr().out and not (tmp_path / "x").exists()


def test_a_scale_whose_pool_would_reach_the_evaluation_seeds_is_refused():
    with pytest.raises(ValueError, match="evaluation seeds"):
        dataclasses.replace(pv.SCALES["full"], pool_tasks=(pv.REACH,) * 40)


def _line(*points):
    return [{"env_steps": steps, "budget": steps, "success_rate": rate} for steps, rate in points]


def test_action_data_to_reach_a_success_and_the_ratio_of_arm1_to_arm2():
    headline = {
        "arm1": _line((100, 0.5), (400, 0.9)),
        "arm2": _line((100, 0.1), (400, 0.5), (1600, 0.85)),
        "sac-her-state": _line((100, 0.0), (400, 0.2)),
    }
    assert pv.steps_to_reach(headline["arm1"], 0.5) == 100
    assert pv.steps_to_reach(headline["arm1"], 0.7) == pytest.approx(200)  # halfway in log steps
    assert pv.steps_to_reach(headline["sac-her-state"], 0.5) is None
    reach = pv.data_to_reach(headline, 0.8)
    assert reach["common_threshold"] == 0.8
    assert reach["ratio_arm1_to_arm2"] == pytest.approx(
        math.exp(math.log(100) + 0.75 * math.log(4)) / math.exp(math.log(400) + (0.3 / 0.35) * math.log(4))
    )
    assert reach["target_ratio_at_most_half"] is True
    lower = pv.data_to_reach({**headline, "arm2": _line((100, 0.1), (400, 0.6))}, 0.8)
    assert lower["common_threshold"] == 0.6 and lower["env_steps_at_target"]["arm2"] is None
    assert pv.ahead_of_rl(headline)["sac-her-state"] == {"budgets": [100, 400], "arm1_ahead_at_every_budget": True}
