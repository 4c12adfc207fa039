"""Splitting a table over workers: shards are deterministic, disjoint and complete; shared
upstream stages stay on one worker; GPU workers get one GPU and a share of the CPU threads."""

import pytest

from coreset.experiments import grid


def cells(*ratios_by_noise):
    return [{"corrupt.label_noise.rate": noise, "ratio": r}
            for noise, ratios in ratios_by_noise for r in ratios]


def upstream(cell):
    return cell["corrupt.label_noise.rate"]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_shards_partition_the_cells_in_plan_order(count):
    plan = cells((0.0, [0.2, 0.3]), (0.2, [0.2, 0.3, 0.4]), (0.35, [0.2]))
    shards = grid.split(plan, upstream, count)
    assert len(shards) == count
    flat = [c for s in shards for c in s]
    assert sorted(map(str, flat)) == sorted(map(str, plan))  # each cell exactly once
    for s in shards:  # plan order kept inside a shard
        assert s == [c for c in plan if c in s]
    assert grid.split(plan, upstream, count) == shards  # deterministic


def test_an_upstream_group_is_never_split_when_there_are_enough_groups():
    plan = cells((0.0, [0.2, 0.3]), (0.2, [0.2, 0.3, 0.4]), (0.35, [0.2]))
    shards = grid.split(plan, upstream, 2)
    owners = {upstream(c): i for i, s in enumerate(shards) for c in s}
    for i, s in enumerate(shards):
        assert all(owners[upstream(c)] == i for c in s)
    # largest group (3 cells) first to shard 0, then 2 cells to the emptier shard 1, then 1 cell
    # to shard 1 (load 2 < 3)
    assert [len(s) for s in shards] == [3, 3]
    assert {upstream(c) for c in shards[0]} == {0.2}


def test_fewer_groups_than_workers_deals_cells_round_robin():
    plan = cells((0.0, [0.2, 0.3, 0.4, 0.6, 0.8]))
    shards = grid.split(plan, upstream, 2)
    assert [[c["ratio"] for c in s] for s in shards] == [[0.2, 0.4, 0.8], [0.3, 0.6]]


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "1/0", ""])
def test_bad_shard_is_one_clear_error(text):
    with pytest.raises(grid.GridError, match=r"--shard .* K/N with 0 <= K < N"):
        grid.Shard.parse(text)
    assert grid.Shard.parse("3/4") == grid.Shard(3, 4)


def test_gpu_workers_pin_one_gpu_each_and_share_the_cores():
    envs = grid.gpu_workers(["0", "1", "3"], cpu_count=16)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "3"]
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"5"}  # 3 x 5 <= 16 cores
    assert grid.gpu_workers(["0", "1", "2", "3"], cpu_count=2)[0]["MKL_NUM_THREADS"] == "1"
    with pytest.raises(grid.GridError, match="twice"):
        grid.gpu_workers(["0", "0"], cpu_count=4)
    with pytest.raises(grid.GridError, match="empty"):
        grid.gpu_workers([], cpu_count=4)


def test_submitit_tasks_one_clone_each_sharing_one_cache(tmp_path):
    from coreset.experiments import cluster

    jobs = cluster.tasks(tmp_path, ["robustness", "--tiny"], 3, tmp_path / "work",
                         "/shared/cache", None, threads=4, run_log=tmp_path / "runs")
    assert [j.shard for j in jobs] == ["0/3", "1/3", "2/3"]
    assert len({j.clone for j in jobs}) == 3  # one clone per task
    assert {j.cache_dir for j in jobs} == {"/shared/cache"}
    assert {j.git_remote for j in jobs} == {j.repo for j in jobs} == {str(tmp_path.resolve())}
    assert jobs[0].env["OMP_NUM_THREADS"] == "4"
    assert jobs[0].env[cluster.RUN_LOG_ENV] == str((tmp_path / "runs").resolve())
    with pytest.raises(grid.GridError, match="--workers 0"):
        cluster.tasks(tmp_path, ["robustness"], 0, tmp_path, None, None)


def test_submitit_executor_errors_are_one_line(tmp_path):
    from coreset.experiments import cluster

    with pytest.raises(grid.GridError, match="--submitit 'pbs' is not allowed"):
        cluster.executor("pbs", tmp_path, timeout_min=1, cpus=1, gpus=0)
    with pytest.raises(grid.GridError, match="--executor-param"):
        cluster.executor("local", tmp_path, timeout_min=1, cpus=1, gpus=0,
                         params={"no_such_knob": 1})
    ex = cluster.executor("local", tmp_path, timeout_min=7, cpus=1, gpus=0)
    assert ex.parameters["timeout_min"] == 7  # not the local executor's 2-minute default
