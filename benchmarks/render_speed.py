"""Time to render one camera frame, by image size, with llvmpipe on the calling thread
(``LP_NUM_THREADS=0``, armworld's default where it is unset) against llvmpipe's default, a worker
thread per core, measured in the same run. Prints JSON.

Each setting runs in a fresh process (Mesa reads the variable when the first GL context
starts), alternating, ``--repeats`` times; the JSON gives each cell's best and median in
milliseconds per frame. On a GPU the variable changes nothing.

    python benchmarks/render_speed.py [--sizes 64 128 256 480] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {"calling_thread": "0", "llvmpipe_threads": str(os.cpu_count())}  # LP_NUM_THREADS


def measure(sizes: list[int], frames: int) -> dict[str, float]:
    """Milliseconds per frame of ``front`` and ``top`` in FrankaPush at each size."""
    import gymnasium
    import mujoco

    import armworld  # noqa: F401  (registers the envs)
    from armworld.envs.rendering import use_default_gl

    use_default_gl()  # armworld's renderers do this on first use; this one is MuJoCo's own

    env = gymnasium.make("armworld/FrankaPush-v0")
    env.reset(seed=0)
    model, data = env.unwrapped.model, env.unwrapped.data
    times = {}
    for size in sizes:
        for camera in ("front", "top"):
            renderer = mujoco.Renderer(model, size, size)
            renderer.update_scene(data, camera=camera)
            renderer.render()  # compile shaders, allocate buffers
            start = time.perf_counter()
            for _ in range(frames):
                renderer.render()
            times[f"{camera}_{size}"] = 1e3 * (time.perf_counter() - start) / frames
            renderer.close()
    env.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 480], help="image sides (pixels)")
    parser.add_argument("--frames", type=int, default=100, help="frames per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per setting")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.sizes, args.frames)))
        return

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    for _ in range(args.repeats):
        for name, threads in SETTINGS.items():
            env = {**os.environ, "LP_NUM_THREADS": threads}
            command = [sys.executable, __file__, "--child", "--frames", str(args.frames), "--sizes", *map(str, args.sizes)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            runs[name].append(json.loads(out.splitlines()[-1]))
    report = {}
    for cell in runs["calling_thread"][0]:
        row = {}
        for name in SETTINGS:
            values = [run[cell] for run in runs[name]]
            row[f"{name}_ms"] = {"best": round(min(values), 3), "median": round(statistics.median(values), 3)}
        row["speedup_median"] = round(row["llvmpipe_threads_ms"]["median"] / row["calling_thread_ms"]["median"], 2)
        report[cell] = row
    print(json.dumps({"load_average_1min": round(os.getloadavg()[0], 2), "results": report}, indent=2))


if __name__ == "__main__":
    main()
