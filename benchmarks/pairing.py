#!/usr/bin/env python
"""Benchmark `libra_nb.pairing.pair_studies` on MIMIC-CXR-sized synthetic metadata.

Times the vectorised pairing (wall and CPU time, best of `--repeats`), measures its peak traced
memory (tracemalloc, in a separate run so tracing does not slow the timed runs), runs a plain
per-patient Python loop implementing the same rule, checks that both give identical pairs, and
appends the figures with the machine and command to benchmarks/RESULTS.md under `## pairing`.

    python benchmarks/pairing.py                      # both rules, MIMIC-CXR size
    python benchmarks/pairing.py --rules reference --no_record
"""
from __future__ import annotations
import os, sys, time, platform, tracemalloc, resource, datetime
from pathlib import Path
import numpy as np, pandas as pd
from fastcore.script import call_parse
from results_md import append_results
from libra_nb.pairing import pair_studies, simulate_metadata, pairing_stats, FRONTAL_VIEWS

def _order_key(r):
    "The documented image order within a patient: date, time (missing = end of day), study, dicom."
    return (r.StudyDate, np.inf if np.isnan(r.StudyTime) else r.StudyTime, r.study_id, r.dicom_id)

def _days(later, earlier):
    return (datetime.datetime.strptime(str(later), '%Y%m%d') - datetime.datetime.strptime(str(earlier), '%Y%m%d')).days

def loop_reference(md):
    "Per patient: the prior of an image is the last image of the most recent strictly earlier date."
    out = {}
    for _, g in md.groupby('subject_id', sort=False):
        prior = last = date = None
        for r in sorted(g.itertuples(index=False), key=_order_key):
            if r.StudyDate != date: prior, date = last, r.StudyDate
            out[r.dicom_id] = prior
            last = r
    return out

def _seconds(r):
    day = datetime.date(r.StudyDate // 10000, r.StudyDate // 100 % 100, r.StudyDate % 100).toordinal() * 86400
    t = r.StudyTime
    return day + (86400 if np.isnan(t) else t // 10000 * 3600 + t // 100 % 100 * 60 + t % 100)

def loop_frontal(md):
    "Per patient: prior study = latest study with an earlier date-time (ties: larger study_id); its first frontal image."
    out = {}
    for _, g in md.groupby('subject_id', sort=False):
        studies = {}
        for r in sorted(g.itertuples(index=False), key=_order_key): studies.setdefault(r.study_id, []).append(r)
        order = sorted((min(_seconds(r) for r in rs), sid) for sid, rs in studies.items())
        for k, (when, sid) in enumerate(order):
            j = k - 1
            while j >= 0 and order[j][0] == when: j -= 1
            prior = None
            if j >= 0:
                cand = studies[order[j][1]]
                prior = next((r for r in cand if r.ViewPosition in FRONTAL_VIEWS), cand[0])
            for r in studies[sid]: out[r.dicom_id] = prior
    return out

def check_same(pairs, loop_out, md):
    "Assert the vectorised pairs equal the loop's (prior dicom, prior study, days) for every image."
    row = md.set_index('dicom_id')
    want_dicom = [None if loop_out[d] is None else loop_out[d].dicom_id for d in pairs.dicom_id]
    want_study = [pd.NA if loop_out[d] is None else loop_out[d].study_id for d in pairs.dicom_id]
    want_days = [np.nan if loop_out[d] is None else _days(row.at[d, 'StudyDate'], loop_out[d].StudyDate) for d in pairs.dicom_id]
    assert len(loop_out) == len(pairs) == len(md)
    assert pairs.prior_dicom_id.fillna('-').tolist() == [w or '-' for w in want_dicom], 'prior_dicom_id differs'
    assert pairs.prior_study_id.fillna(-1).tolist() == [-1 if w is pd.NA else w for w in want_study], 'prior_study_id differs'
    np.testing.assert_array_equal(pairs.days_since_prior.to_numpy(), np.array(want_days, float))

def _timed(f, repeats):
    "Best wall and CPU seconds of `repeats` calls of `f`, and its last result."
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        res = f()
        walls.append(time.perf_counter() - w); cpus.append(time.process_time() - c)
    return min(walls), min(cpus), res

def _peak_mib(f):
    "Peak memory traced by tracemalloc while `f` runs, in MiB (numpy and pandas buffers included)."
    tracemalloc.start(); tracemalloc.reset_peak()
    f()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20

def machine() -> str:
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor()) \
        if Path('/proc/cpuinfo').exists() else platform.processor()
    mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; Python {platform.python_version()}, "
            f"pandas {pd.__version__}, numpy {np.__version__}")

@call_parse
def main(images:int=377_110, # images in the synthetic metadata (MIMIC-CXR: 377,110)
         studies:int=227_835, # studies (MIMIC-CXR: 227,835)
         patients:int=65_379, # patients (MIMIC-CXR: 65,379)
         rules:str='reference,frontal', # comma-separated rules to benchmark
         repeats:int=5, # timed runs per rule (the best is reported)
         seed:int=0, # seed of the synthetic metadata
         no_record:bool=False, # print only; do not append to benchmarks/RESULTS.md
        ):
    "Time vectorised pair_studies against a per-patient loop on MIMIC-sized metadata."
    cmd = 'python ' + ' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    mach, load0 = machine(), os.getloadavg()[0]
    t = time.perf_counter()
    md = simulate_metadata(images, studies, patients, seed=seed)
    gen = time.perf_counter() - t
    print(f"synthetic metadata: {len(md):,} images, {md.study_id.nunique():,} studies, {md.subject_id.nunique():,} patients ({gen:.1f} s)")
    rows = []
    for rule in rules.split(','):
        wall, cpu, pairs = _timed(lambda: pair_studies(md, rule=rule), repeats)
        peak = _peak_mib(lambda: pair_studies(md, rule=rule))
        lwall, lcpu, loop_out = _timed(lambda: (loop_reference if rule == 'reference' else loop_frontal)(md), 1)
        check_same(pairs, loop_out, md)
        st = pairing_stats(pairs)
        rows.append(dict(rule=rule, wall=wall, cpu=cpu, peak=peak, lwall=lwall, lcpu=lcpu, share=st['images with prior (share)']))
        print(f"{rule}: vectorised {wall:.2f} s wall / {cpu:.2f} s CPU, peak {peak:.0f} MiB; loop {lwall:.1f} s wall "
              f"({lwall / wall:.0f}x); identical pairs; {st['images with prior (share)']:.1%} of images have a prior")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    table = '\n'.join(f"| {r['rule']} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['peak']:.0f} | {r['lwall']:.1f} | {r['lcpu']:.1f} | "
                      f"{r['lwall'] / r['wall']:.0f}x | yes | {r['share']:.1%} |" for r in rows)
    text = (f"### {datetime.datetime.now():%Y-%m-%d %H:%M} — `{cmd}`\n\n"
            f"Machine: {mach}. 1-minute load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
            f"(the machine's {os.cpu_count()} cores are shared with other jobs).\n"
            f"Data: {len(md):,} images, {md.study_id.nunique():,} studies, {md.subject_id.nunique():,} patients "
            f"(`simulate_metadata(seed={seed})`). Best of {repeats} runs; peak = tracemalloc peak during one `pair_studies` call "
            f"(separate run); process max RSS {rss:.0f} MiB (includes the loop and the data).\n\n"
            "| rule | pair_studies wall s | CPU s | peak MiB | per-patient loop wall s | loop CPU s | speed-up | identical | images with prior |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + table + "\n\n"
            "Goal (default `reference` rule): < 2 s and < 2 GB. With the CPU shared (load average above the core count), "
            "wall times are inflated by waiting for a core; the process CPU time is the steadier figure.\n")
    print(text)
    if not no_record: append_results(text, '## pairing')
