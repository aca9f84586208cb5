"""Wall time of the built-in demo (`libra_nb_demo`) and its real-vs-dummy-prior ablation table, appended to RESULTS.md.

    python benchmarks/demo.py --size small --out /tmp/demo_small
    python benchmarks/demo.py --size full --out /tmp/demo_full --note 'idle machine'
    python benchmarks/demo.py --size small --seeds 0,1,2 --out /tmp/demo_seeds   # training variance: one run per seed
    python benchmarks/demo.py --size small --overrides '{"stage1_questions": true}'   # a recipe change (DemoConfig fields)

With several seeds every run retrains both arms from scratch (cohort, stand-ins, TAC, LoRA, data order), so the
spread of the real-minus-dummy difference across seeds is the training variance the per-run bootstrap CIs leave out.
"""
import json, os, platform, shlex, sys, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')  # before transformers is imported: the demo downloads nothing
from datetime import datetime, timezone
from pathlib import Path
import numpy as np, pandas as pd, torch
from fastcore.script import call_parse
from results_md import append_results
from libra_nb.demo import run_demo, goal_verdict, ablation_markdown, GOAL_METRICS

def _run_text(res, wall, seed):
    "Markdown of one run: wall time, phases, metrics with CIs, paired tests, verdict."
    tests, ceil = res['tests'], res['ceilings']
    return f"""
Seed {seed}: wall time **{wall:.0f} s** ({res['n_test']} test studies, {res['n_test_with_prior']} with a prior). Phases (s): {res['times']}

{ablation_markdown(res['table'], 'metric (score [bootstrap 95% CI])')}

{tests.round(3).to_markdown()}

Probes (change-label accuracy %, logistic regression on each link's features, `chain_probes`):

{res['probes'].round(1).to_markdown()}

{goal_verdict(res)[1]}
Ceilings (perfect readers, `oracle_findings`): temporal F1 both films {ceil.loc['Temporal_entity_score', 'oracle, both films']:.1f}, current film only {ceil.loc['Temporal_entity_score', 'oracle, current film only']:.1f}.
"""

def _seed_summary(deltas:dict, goals:list[bool]) -> str:
    "Per-seed values, mean and SD over seeds of the paired differences, and each seed's goal verdict."
    lines = ['| difference | per seed | mean | SD over seeds |', '|---|---|---|---|']
    for m, d in deltas.items():
        if len(d) < 2: continue  # a comparison missing from some runs (no baseline arm)
        d = np.array(d)
        lines.append(f"| {m} | {', '.join(f'{x:+.1f}' for x in d)} | {d.mean():+.1f} | {d.std(ddof=1):.1f} |")
    lines.append(f"| goal met (`goal_verdict`) | {', '.join('yes' if g else 'no' for g in goals)} | | |")
    return '\n'.join(lines)

def run_seeds(size:str, out:str, threads:int, seeds:list[int], overrides:dict|None=None) -> tuple[list[str], dict, list[bool]]:
    "Run the demo once per seed: the markdown of each run, the paired differences per metric and the goal verdicts."
    parts, deltas, goals = [], _new_deltas(), []
    for seed in seeds:
        folder = out if len(seeds) == 1 else f'{out}/seed{seed}'
        t0 = time.perf_counter(); res = run_demo(folder, size, threads=threads, seed=seed, **(overrides or {})); wall = time.perf_counter() - t0
        parts.append(_run_text(res, wall, seed))
        _deltas_of(res, deltas); goals.append(goal_verdict(res)[0])
        print(parts[-1], flush=True)
    return parts, deltas, goals

def _deltas_of(res:dict, deltas:dict):
    "Append a run's paired differences to `deltas`."
    for k in deltas:
        m, comp = k.split(', ', 1)
        if comp in res['tests'].index.get_level_values(0): deltas[k].append(res['tests'].loc[(comp, m), 'delta'])

def _new_deltas() -> dict:
    "One empty list per (metric, comparison) of the seed summary."
    return {f'{m}, real prior - {other}': [] for other in ('dummy prior', 'current-only projector') for m in GOAL_METRICS}

def read_run(folder) -> dict:
    "A finished run's tables from its results folder (`paired_tests.csv`, `ceilings.csv`, `metrics.csv`, `probes.csv`, `config.json`, `timings.json`)."
    f = Path(folder)
    if not (f/'paired_tests.csv').exists(): raise FileNotFoundError(f"{f} holds no paired_tests.csv: give the results folder of a finished run")
    read = lambda n, idx: pd.read_csv(f/n, index_col=idx)
    cfg = json.loads((f/'config.json').read_text())
    return dict(tests=read('paired_tests.csv', [0, 1]), ceilings=read('ceilings.csv', 0), table=read('metrics.csv', 0),
                probes=read('probes.csv', 0), size=cfg['size'], seed=cfg['seed'], times=json.loads((f/'timings.json').read_text()))

def summarize_runs(folders:list[str]) -> str:
    "Markdown of the spread over finished runs (one per seed): paired differences, goal verdicts, probe gaps and wall times."
    runs, deltas = [read_run(f) for f in folders], _new_deltas()
    for r in runs: _deltas_of(r, deltas)
    goals = [goal_verdict(r)[0] for r in runs]
    gap = lambda r, a, b: r['probes'].loc[a, 'all'] - r['probes'].loc[b, 'all']
    probe = ['| seed | total (s) | probe gap, encoder (both films − current) | probe gap, TAC (real pairs − prior := current) | TAC, real − dummy arm |',
             '|---|---|---|---|---|']
    probe += [f"| {r['seed']} | {r['times']['total']:.0f} | {gap(r, 'encoder, both films', 'encoder, current film only'):+.1f} | "
              f"{gap(r, 'TAC, real-prior arm, real pairs', 'TAC, real-prior arm, prior := current'):+.1f} | "
              f"{gap(r, 'TAC, real-prior arm, real pairs', 'TAC, dummy-prior arm'):+.1f} |" for r in runs]
    ceil = [f"seed {r['seed']}: " + ', '.join(f"{m} {r['ceilings'].loc[m, 'oracle, both films']:.1f} / {r['ceilings'].loc[m, 'oracle, current film only']:.1f}"
                                            for m in GOAL_METRICS) for r in runs]
    return (f"Runs: {', '.join(map(str, folders))} (size {runs[0]['size']}).\n\n{_seed_summary(deltas, goals)}\n\n" + '\n'.join(probe)
            + "\n\nPerfect readers (both films / current film only): " + '; '.join(ceil) + '.\n\n'
            + '\n'.join(f"- seed {r['seed']}: {goal_verdict(r)[1]}" for r in runs) + '\n')

def _heading(size:str, threads:int, seeds:str, note:str, load:tuple) -> str:
    "The heading of a result: date, settings, machine and command."
    note_line = f"  \nNote: {note}" if note else ''
    return f"""
### {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, size={size}, threads={threads}, seeds={seeds}

Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, load average {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} at start; torch {torch.__version__}, Python {platform.python_version()}.
Command: `python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:])}`{note_line}
"""

@call_parse
def main(size:str='small',              # demo preset: 'tiny', 'small' or 'full'
         out:str='/tmp/libra_demo_bench', # results folder of the run (one subfolder per seed when several)
         threads:int=2,                 # torch CPU threads
         seeds:str='0',                 # comma-separated seeds; several measure the training variance
         note:str='',                   # free text recorded with the result (e.g. machine load)
         overrides:str='{}',            # `DemoConfig` overrides as JSON, e.g. '{"stage1_questions": true, "lm_pretrain": "text"}'
         summarize:str='',              # comma-separated results folders of finished runs: append only their spread over seeds (no run)
         results:str=str(Path(__file__).parent/'RESULTS.md')): # file to append to
    "Run the demo once per seed, then append wall times, ablation tables, paired tests (and the spread over seeds) to `results`."
    if summarize:
        text = summarize_runs(summarize.split(','))
        append_results(f"\n### {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, spread over seeds of finished runs\n\n"
                       f"Command: `python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:])}`{'  ' + chr(10) + 'Note: ' + note if note else ''}\n\n{text}", '## demo', Path(results))
        return print(text)
    seed_list, load = [int(s) for s in seeds.split(',')], os.getloadavg()
    parts, deltas, goals = run_seeds(size, out, threads, seed_list, json.loads(overrides))
    summary = '' if len(seed_list) < 2 else '\nTraining variance: the paired differences of each seed (points), their mean and SD over seeds:\n\n' + _seed_summary(deltas, goals) + '\n'
    append_results(_heading(size, threads, seeds, note, load) + ''.join(parts) + summary, '## demo', Path(results))
    print(summary)
