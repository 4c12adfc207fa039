#!/usr/bin/env bash
# Fill one paper table with a Slurm job array: array task K of N runs shard K/N of the table's
# experiments in its own clone, then pushes its experiment refs to the git remote and its outputs
# and run-cache to the DVC remote. Afterwards, on any clone:
#   python -m coreset.experiments.tables TABLE --merge --git-remote origin
#
#   sbatch --array=0-3 src/coreset/scripts/slurm_array.sh selectors_x_ratios --preset cifar100_resnet50
#
# Needs: the baseline committed and pushed (git push; dvc push --run-cache), a DVC remote that
# every node reaches set as the default remote in the committed .dvc/config, and the project's
# environment active when you call sbatch (sbatch passes it on). Settings, all optional:
#   CORESET_REPO     the git URL or path to clone (default: the directory sbatch was called in)
#   CORESET_WORKDIR  where the per-task clones go (default: $TMPDIR or /tmp)
#   CORESET_REMOTE   the DVC remote name (default: the default remote)
#SBATCH --job-name=coreset-table
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --output=coreset-table-%A_%a.log
set -euo pipefail
: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-(N-1)}"
: "${SLURM_ARRAY_TASK_COUNT:?submit with sbatch --array=0-(N-1)}"
[ $# -ge 1 ] || { echo "usage: sbatch --array=0-(N-1) $0 TABLE [coreset table options]" >&2; exit 2; }

repo=${CORESET_REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
clone=${CORESET_WORKDIR:-${TMPDIR:-/tmp}}/coreset-${SLURM_ARRAY_JOB_ID:-$$}-${SLURM_ARRAY_TASK_ID}
[ -d "$clone/.git" ] || git clone -q "$repo" "$clone"
cd "$clone"
# the task's CPU share for the BLAS/OpenMP pools (Slurm pins the GPU with CUDA_VISIBLE_DEVICES)
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1} MKL_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
remote=()
[ -z "${CORESET_REMOTE:-}" ] || remote=(--dvc-remote "$CORESET_REMOTE")
exec python -m coreset.experiments.tables "$@" --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" \
  --git-remote origin "${remote[@]}"
