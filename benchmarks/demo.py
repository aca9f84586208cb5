"""Wall time of the built-in demo (`libra_nb_demo`) and its real-vs-dummy-prior ablation table, appended to RESULTS.md.

    python benchmarks/demo.py --size small --out /tmp/demo_small
    python benchmarks/demo.py --size full --out /tmp/demo_full --note 'idle machine'
"""
import os, platform, shlex, sys, time
from datetime import datetime, timezone
from pathlib import Path
from fastcore.script import call_parse
from results_md import append_results

@call_parse
def main(size:str='small',              # demo preset: 'tiny', 'small' or 'full'
         out:str='/tmp/libra_demo_bench', # results folder of the run
         threads:int=2,                 # torch CPU threads
         note:str='',                   # free text recorded with the result (e.g. machine load)
         results:str=str(Path(__file__).parent/'RESULTS.md')): # file to append to
    "Run the demo once, then append its wall time, phase timings, ablation table and paired tests to `results`."
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    import torch
    from libra_nb.demo import run_demo, goal_verdict
    load = os.getloadavg()
    t0 = time.perf_counter(); res = run_demo(out, size, threads=threads); wall = time.perf_counter() - t0
    table, tests = res['table'], res['tests']
    systems = [c for c in table.columns if not c.endswith((' low', ' high'))]
    cell = lambda m, s: f"{table.loc[m, s]:.1f} [{table.loc[m, f'{s} low']:.1f}, {table.loc[m, f'{s} high']:.1f}]"
    rows = '\n'.join(f"| {m} | " + ' | '.join(cell(m, s) for s in systems) + ' |' for m in table.index)
    note_line = f"  \nNote: {note}" if note else ''
    text = f"""
### {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, size={size}, threads={threads}

Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, load average {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} at start; torch {torch.__version__}, Python {platform.python_version()}.
Command: `python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:])}`{note_line}
Wall time: **{wall:.0f} s** ({res['n_test']} test studies, {res['n_test_with_prior']} with a prior). Phases (s): {res['times']}

| metric (score [bootstrap 95% CI]) | {' | '.join(systems)} |
|---|{'---|' * len(systems)}
{rows}

{tests.round(3).to_markdown()}

{goal_verdict(tests)[1]}
"""
    append_results(text, '## demo', Path(results))
    print(text)
