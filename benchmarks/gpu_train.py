"""Training speed of a Libra-7B-shaped model (random weights) for both stages, with a reference-like configuration side by side.

Model: `libra_nb.modeling.LibraForConditionalGeneration` built directly on the device (`torch.device(...)` context, so
the 7B weights never touch the CPU): Dinov2 ViT-B/14 at 518 px (RAD-DINO's shape, 1369 patches), TAC 768 -> 4096
(32 heads, 12 layers), Llama 32 layers / 4096 / 11008 / vocab 32000 (Llama-2-7B = Meditron-7B's shape); weights in
bf16, the trained parameters (TAC in stage 1, LoRA in stage 2) in fp32 under bf16 autocast, fused AdamW, gradient
clipping at 1.0 (HF Trainer's default) — the optimiser step is inside the timed step.

Data: synthetic samples, two images each (random pixels), 1369 image tokens + a text of 100-400 tokens (uniform), of
which about 45 % prompt (masked) and the rest answer + `</s>` (labelled); the same samples (seeded) in every
configuration. Global batch 16 = micro-batch x gradient-accumulation steps. Padding to the longest in a micro-batch.

Stage 1: TAC trainable, LM frozen, gradients flow through all 32 LM layers to the image embeddings.
Stage 2: LoRA r 128 (alpha 256, dropout 0.05) on q,k,v,o,gate,up,down via `libra_nb.lora.add_lora` (peft); TAC frozen.

Configurations (one run, per stage): `reference` = how upstream trains (flash-attention-2 if importable else SDPA,
gradient checkpointing, bf16, micro-batch 16 x 1, padding to the longest, full-sequence logits through
`model(**batch).loss`), then one factor at a time: attention (eager / sdpa / flash_attention_2), gradient
checkpointing off with micro-batches 16..1, checkpointing on with smaller micro-batches, and three prototypes that the
library does not offer yet (marked `library: no`): logits + loss only at labelled positions, length-sorted
micro-batches, `torch.compile` of the decoder layers; finally `best` combines the winners. Speed-up = reference step
time / best step time, measured in the same process on the same samples.

MFU = model FLOPs per step / step time / peak (H100 SXM bf16 dense 989 TFLOP/s); the formula (forward + the backward
work each stage actually needs, no recomputation) is written out in `gpu_common.py` and in the JSON.

    python benchmarks/gpu_train.py --tiny --device cpu                 # CPU smoke run of the whole script (< 60 s)
    python benchmarks/gpu_train.py --stages 1 --json $OUT/s1.json --results_md ''     # H100, < 10 min per stage
    python benchmarks/gpu_train.py --stages 2 --json $OUT/s2.json --results_md ''
    python benchmarks/gpu_train.py --projection_only --from_json s1.json s2.json     # combine both stages (no GPU)
"""
from __future__ import annotations
import argparse, gc, json, statistics, sys, tempfile, time, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_common as G

UPSTREAM_H100_DAYS = {1: 2.7, 2: 1.5}  # the seed's estimate for the reference code on one H100 (385 h + 213 h on one A6000)
PAPER_DATA = {1: dict(file='libra_alignment_train.json', bytes=780e6, epochs=1),
              2: dict(file='libra_findings_section_train.json', bytes=159e6, epochs=3)}

# ------------------------------------------------------------------------------------------------------------ data
def make_samples(shape:dict, n:int, seed:int) -> list[dict]:
    "`n` synthetic samples: text length, prompt length (placeholder inside it), token ids and labels."
    import torch
    from libra_nb.core import IMAGE_TOKEN_INDEX, IGNORE_INDEX
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        L = int(torch.randint(shape['text_min'], shape['text_max'] + 1, (1,), generator=g))
        prompt = max(int(0.45 * L), min(40, L // 3))            # system + USER + <image> + query (+ clinical context)
        img_at = min(34, prompt // 2)                            # `<image>` follows the system prompt and "USER:"
        ids = torch.randint(3, shape['vocab'], (L,), generator=g); ids[0] = 1; ids[-1] = 2  # BOS ... </s>
        ids[img_at] = IMAGE_TOKEN_INDEX
        labels = ids.clone(); labels[:prompt] = IGNORE_INDEX
        out.append(dict(ids=ids, labels=labels, L=L, n_labels=L - prompt, T=G.n_image_tokens(shape) + L - 1))
    return out

def collate(samples:list[dict], device) -> dict:
    "Right-pad a micro-batch to its longest text (as upstream's collator; the splice then pads to the longest sequence)."
    from libra_nb.modeling import pad_sequences
    from libra_nb.core import IGNORE_INDEX
    ids = pad_sequences([s['ids'].tolist() for s in samples], 0)
    return dict(input_ids=ids.to(device, non_blocking=True),
                attention_mask=pad_sequences([[1] * s['L'] for s in samples], 0).to(device, non_blocking=True),
                labels=pad_sequences([s['labels'].tolist() for s in samples], IGNORE_INDEX).to(device, non_blocking=True))

def micro_batches(samples:list[dict], mb:int, order:str) -> list[list[int]]:
    "Indices of each micro-batch: in sample order, or sorted by length so each micro-batch pads less."
    idx = list(range(len(samples)))
    if order == 'sorted': idx.sort(key=lambda i: samples[i]['L'])
    return [idx[i:i + mb] for i in range(0, len(idx), mb)]

# ------------------------------------------------------------------------------------------------------------ model
def prepare_stage(model, stage:int, lora_r:int, master_fp32:bool):
    "Freeze everything except the stage's trainables (TAC, or LoRA adapters added now); trainables in fp32 when mixed precision."
    if stage == 2 and not any('lora_' in n for n, _ in model.named_parameters()):
        try:
            from libra_nb.lora import add_lora
            add_lora(model, r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05)
        except ImportError:  # the library's LoRA module is not there: peft directly, with the same settings
            from peft import LoraConfig, inject_adapter_in_model
            inject_adapter_in_model(LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05, bias='none',
                                               target_modules=list(G.LORA_TARGETS), task_type='CAUSAL_LM'), model.language_model)
    model.requires_grad_(False)
    if stage == 1: train = list(model.mm_projector.parameters())
    else: train = [p for n, p in model.named_parameters() if 'lora_' in n]
    for p in train:
        p.requires_grad_(True)
        if master_fp32: p.data = p.data.float()
    return train

def set_checkpointing(model, on:bool):
    if on: model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={'use_reentrant': False})
    else: model.gradient_checkpointing_disable()

def set_compiled(model, on:bool):
    "`torch.compile` each LM decoder layer (regional compilation: one graph, reused by the 32 identical layers)."
    for layer in model.language_model.model.layers:
        if on: layer.compile(dynamic=True)
        else: layer._compiled_call_impl = None

def loss_full(model, batch, pixel_values):
    "What users run today: the model's own loss (logits for every position)."
    return model(**batch, pixel_values=pixel_values).loss

def loss_answer_only(model, batch, pixel_values):
    "Prototype: LM hidden states, then the LM head and cross-entropy only at labelled positions."
    import torch.nn.functional as F
    from libra_nb.core import IGNORE_INDEX
    e = model.embed_inputs(batch['input_ids'], pixel_values, batch['attention_mask'], batch['labels'])
    mask = e['attention_mask']
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0) if mask is not None else None
    h = model.language_model.model(inputs_embeds=e['inputs_embeds'], attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
    tgt = e['labels'][:, 1:]; sel = tgt != IGNORE_INDEX
    logits = model.language_model.lm_head(h[:, :-1][sel])
    return F.cross_entropy(logits.float(), tgt[sel])

# ------------------------------------------------------------------------------------------------------------ one config
def run_config(model, v:dict, steps:list[list[dict]], pixels:list, a, shape:dict, loader=None) -> dict:
    "Time `v` (attention, checkpointing, micro-batch, order, loss, compile) over the global batches `steps` (first `a.warmup` untimed)."
    import torch
    dev = a.device; cuda = dev.startswith('cuda')
    res = dict(v, status='ok')
    try:
        G.set_attention(model, v['attn']); set_checkpointing(model, v['gc']); set_compiled(model, v['compile'])
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.0, fused=cuda)
        lossf = loss_answer_only if v['loss'] == 'answer' else loss_full
        amp = torch.autocast('cuda' if cuda else 'cpu', dtype=torch.bfloat16, enabled=a.dtype == 'bfloat16')  # bf16 weights, fp32 trainables
        times, waits, losses, padded = [], [], [], []
        if cuda: torch.cuda.reset_peak_memory_stats()
        it = iter(loader) if loader is not None else None
        t_first = time.perf_counter()
        for k, samples in enumerate(steps):
            G.sync(dev); t0 = time.perf_counter(); wait = 0.0; pad = 0
            groups = micro_batches(samples, v['mb'], v['order'])
            for g in groups:
                batch = collate([samples[i] for i in g], dev)
                pad += batch['input_ids'].shape[0] * (batch['input_ids'].shape[1] - 1 + G.n_image_tokens(shape))
                if it is not None:
                    tw = time.perf_counter()
                    try: px = next(it)
                    except StopIteration: it = iter(loader); px = next(it)
                    px = px[:len(g)].to(dev, non_blocking=True).to(pixels[0].dtype); wait += time.perf_counter() - tw
                else: px = pixels[k][g]
                with amp: loss = lossf(model, batch, px)
                (loss / len(groups)).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step(); opt.zero_grad(set_to_none=True)
            G.sync(dev); dt = time.perf_counter() - t0
            if k == a.warmup - 1: res['warmup_s'] = time.perf_counter() - t_first  # includes compilation
            if k >= a.warmup: times.append(dt); waits.append(wait); losses.append(loss.detach().item()); padded.append(pad)
        real = [sum(s['T'] for s in samples) for samples in steps[a.warmup:]]
        flops = [sum(G.sample_flops(shape, s['L'], s['n_labels'], v['stage'], a.lora_r)['total'] for s in samples) for samples in steps[a.warmup:]]
        med = statistics.median(times)
        res.update(step_s=med, step_min_s=min(times), samples_per_s=a.global_batch / med, tokens_per_s=statistics.mean(real) / med,
                   pad_frac=1 - sum(real) / sum(padded), tflops_per_step=statistics.mean(flops) / 1e12,
                   mfu=statistics.mean(flops) / med / (a.peak_tflops * 1e12), loss=losses[-1],
                   peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                   data_wait_frac=(sum(waits) / sum(times)) if loader is not None else None)
        del opt
    except torch.OutOfMemoryError as e:
        res.update(status='OOM', error=str(e).split('\n')[0][:200])
    except Exception as e:  # keep going: one broken option must not lose the others' figures
        res.update(status='error', error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
    finally:
        for p in model.parameters(): p.grad = None
        set_compiled(model, False)
        gc.collect()
        if dev.startswith('cuda'): torch.cuda.empty_cache()
    tag = f"{res.get('step_s', float('nan')):.3f} s/step, {res.get('samples_per_s', float('nan')):.2f} samples/s, MFU {res.get('mfu', float('nan')):.3f}" if res['status'] == 'ok' else f"{res['status']}: {res.get('error')}"
    print(f"  stage {v['stage']} {v['name']:<28} {tag}", flush=True)
    return res

def variant(stage, name, base, library=True, **kw) -> dict:
    return dict(base, stage=stage, name=name, library=library, **kw)

def stage_variants(stage:int, a, attns:list[str]) -> tuple[dict, list[dict]]:
    "The reference configuration and the one-factor-at-a-time variants of a stage (all reachable with library options)."
    gb = a.global_batch
    ref = dict(stage=stage, name='reference', attn=a.reference_attn, gc=True, mb=min(16, gb), order='random', loss='full',
               compile=False, library=True)
    vs = [ref]
    vs += [variant(stage, f'attn={x}', ref, attn=x) for x in attns if x != ref['attn']]
    vs += [variant(stage, f'no-ckpt mb={m}', ref, gc=False, mb=m) for m in a.micro_batches if gb % m == 0]
    vs += [variant(stage, f'ckpt mb={m}', ref, mb=m) for m in a.ckpt_micro_batches if gb % m == 0 and m != ref['mb']]
    return ref, vs

def fastest(results:list[dict], library_only:bool=True) -> dict|None:
    ok = [r for r in results if r['status'] == 'ok' and (r['library'] or not library_only) and 'pipeline' not in r['name']]
    return max(ok, key=lambda r: r['samples_per_s']) if ok else None

def prototype_variants(base:dict, a) -> list[dict]:
    "The fastest library configuration plus one prototype each (changes the library does not offer yet)."
    keep = dict(stage=base['stage'], attn=base['attn'], gc=base['gc'], mb=base['mb'], order='random', loss='full', compile=False)
    vs = [dict(keep, name='+ loss at answer only', library=False, loss='answer')]
    if base['mb'] < a.global_batch: vs.append(dict(keep, name='+ length-sorted micro-batches', library=False, order='sorted'))
    if a.compile: vs.append(dict(keep, name='+ torch.compile layers', library=False, compile=True))
    return vs

def combine(base:dict, protos:list[dict], min_gain:float=1.02) -> tuple[dict, list[str]]:
    "`base` with every prototype factor that made it at least `min_gain` times faster."
    best = dict(stage=base['stage'], name='best', attn=base['attn'], gc=base['gc'], mb=base['mb'], order='random', loss='full',
                compile=False, library=True, from_=base['name'])
    helped = []
    for p in protos:
        if p['status'] == 'ok' and p['samples_per_s'] >= min_gain * base['samples_per_s']:
            for k in ('loss', 'order', 'compile'):
                if p[k] != best[k]: best[k] = p[k]
            helped.append(p['name'])
    best['library'] = not helped
    if helped: best['from_'] = base['name'] + ' ' + ' '.join(helped)
    return best, helped

# ------------------------------------------------------------------------------------------------------------ projection
def mean_record_bytes(n_patients:int=40, seed:int=0) -> dict:
    "Mean size of a Libra JSON record built by `build_libra_records` on the synthetic cohort (compact and indent=1 JSON)."
    from libra_nb.synthetic import make_cohort
    from libra_nb.pairing import load_mimic_metadata, pair_studies
    from libra_nb.sections import section_reports
    from libra_nb.dataset import build_libra_records
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter('ignore')
        c = make_cohort(tmp, n_patients=n_patients, image_size=32, seed=seed)
        pairs = pair_studies(load_mimic_metadata(c.metadata, c.split))
        recs = build_libra_records(pairs, section_reports(Path(tmp)/'files', progress=False))
    compact = [len(json.dumps(r, ensure_ascii=False).encode()) + 2 for r in recs]  # + ", " between array items
    indented = [len(json.dumps(r, ensure_ascii=False, indent=1).encode()) + 2 for r in recs]
    return dict(records=len(recs), mean_bytes_compact=statistics.mean(compact), mean_bytes_indent1=statistics.mean(indented))

def projection(by_stage:dict, rec:dict|None) -> dict:
    "Hours for both stages: the seed's upstream H100 days / measured speed-up, and records x epochs / measured samples/s."
    out = dict(upstream_h100_days=UPSTREAM_H100_DAYS, record_size=rec, stages={})
    for st, d in by_stage.items():
        ref, best = d.get('reference'), d.get('best')
        if not ref or not best: continue
        sp = best['samples_per_s'] / ref['samples_per_s']
        lib = d.get('library') or ref
        row = dict(speedup=sp, reference_samples_per_s=ref['samples_per_s'], best_samples_per_s=best['samples_per_s'],
                   hours_from_seed=UPSTREAM_H100_DAYS[st] * 24 / sp, best_config=best.get('from_', best['name']),
                   library_config=lib['name'], speedup_library=lib['samples_per_s'] / ref['samples_per_s'],
                   hours_from_seed_library=UPSTREAM_H100_DAYS[st] * 24 * ref['samples_per_s'] / lib['samples_per_s'])
        if rec:
            for kind in ('compact', 'indent1'):
                n = PAPER_DATA[st]['bytes'] / rec[f'mean_bytes_{kind}']
                row[f'records_{kind}'] = n
                row[f'hours_from_records_{kind}'] = n * PAPER_DATA[st]['epochs'] / best['samples_per_s'] / 3600
                row[f'reference_hours_from_records_{kind}'] = n * PAPER_DATA[st]['epochs'] / ref['samples_per_s'] / 3600
        out['stages'][st] = row
    if len(out['stages']) == 2:
        out['total_hours_from_seed'] = sum(r['hours_from_seed'] for r in out['stages'].values())
        out['total_hours_from_seed_library'] = sum(r['hours_from_seed_library'] for r in out['stages'].values())
        if rec: out['total_hours_from_records_compact'] = sum(r['hours_from_records_compact'] for r in out['stages'].values())
        out['goal_24h_met'] = out['total_hours_from_seed'] < 24
    return out

def projection_md(p:dict) -> list[str]:
    md = ['', f"Projection (seed: upstream on one H100 = {UPSTREAM_H100_DAYS[1]} days stage 1 + {UPSTREAM_H100_DAYS[2]} days stage 2):", '']
    rows = []
    for st, r in sorted(p['stages'].items()):
        rows.append(dict(stage=st, cfg=r['best_config'], sp=r['speedup'], h=r['hours_from_seed'], n=r.get('records_compact'),
                         hr=r.get('hours_from_records_compact'), href=r.get('reference_hours_from_records_compact'),
                         lcfg=r['library_config'], lsp=r['speedup_library'], lh=r['hours_from_seed_library']))
    md.append(G.md_table(rows, [('stage', 'stage', 'd'), ('best config', 'cfg', ''), ('speed-up vs reference', 'sp', '.2f'),
                                ('h (seed / speed-up)', 'h', '.1f'), ('best library-only config', 'lcfg', ''),
                                ('its speed-up', 'lsp', '.2f'), ('its h (seed)', 'lh', '.1f'), ('est. records', 'n', ',.0f'),
                                ('h (records x epochs / samples/s)', 'hr', '.1f'), ('reference h (same)', 'href', '.1f')]))
    if 'total_hours_from_seed' in p:
        md += ['', f"Both stages: {p['total_hours_from_seed']:.1f} h from the seed's figure / speed-up "
               f"({p['total_hours_from_seed_library']:.1f} h with library options only)"
               + (f", {p['total_hours_from_records_compact']:.1f} h from record counts" if 'total_hours_from_records_compact' in p else '')
               + f" — goal < 24 h {'met' if p['goal_24h_met'] else 'NOT met'}."]
    if p.get('record_size'):
        r = p['record_size']
        md += ['', f"Record counts assume the paper's files hold records of the mean size that `build_libra_records` makes on the synthetic "
               f"cohort ({r['records']} records: {r['mean_bytes_compact']:.0f} bytes compact JSON, {r['mean_bytes_indent1']:.0f} with indent=1; "
               f"compact used): stage 1 = 1 epoch of 780 MB, stage 2 = 3 epochs of 159 MB. Real alignment records (VQA) are shorter "
               f"than findings records, so stage 1's count is a lower bound and its text lengths differ from the 100-400 tokens timed."]
    return md

# ------------------------------------------------------------------------------------------------------------ main
def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tiny', action='store_true', help='tiny shapes: the whole script on a CPU in seconds (smoke test)')
    ap.add_argument('--device', default=None, help="'cuda' (default when available) or 'cpu'")
    ap.add_argument('--dtype', default=None, help="weights dtype: default bfloat16 on cuda, float32 on cpu")
    ap.add_argument('--stages', default='1,2', help='stages to measure')
    ap.add_argument('--global_batch', type=int, default=16, help='samples per optimiser step (upstream: 16)')
    ap.add_argument('--micro_batches', default='16,8,4,2,1', help='micro-batches tried without gradient checkpointing')
    ap.add_argument('--ckpt_micro_batches', default='8,4', help='micro-batches tried with checkpointing (besides the reference 16)')
    ap.add_argument('--attn', default='eager,sdpa,flash_attention_2', help='attention implementations to compare (fa2 only if importable)')
    ap.add_argument('--reference_attn', default=None, help='reference attention (default flash_attention_2 if importable, else sdpa)')
    ap.add_argument('--compile', default='auto', help="try torch.compile of the decoder layers: 1, 0 or auto (cuda only)")
    ap.add_argument('--steps', type=int, default=2, help='timed optimiser steps per configuration')
    ap.add_argument('--warmup', type=int, default=1, help='untimed optimiser steps first')
    ap.add_argument('--lora_r', type=int, default=128)
    ap.add_argument('--variants', default='', help='only these configuration names (comma-separated; default all)')
    ap.add_argument('--no_prototypes', action='store_true', help="'best' uses library options only")
    ap.add_argument('--data_workers', type=int, default=-1, help='>= 0: also run `best` fed by real JPEG decoding with this many DataLoader workers')
    ap.add_argument('--time_budget', type=float, default=540, help='seconds; configurations left when it is spent are skipped')
    ap.add_argument('--peak_tflops', type=float, default=G.H100_BF16_PEAK_TFLOPS)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default 1 on cpu)')
    ap.add_argument('--projection_only', action='store_true', help='no measurement: project from --from_json files')
    ap.add_argument('--from_json', nargs='*', default=[], help='earlier gpu_train JSONs to include in the projection')
    ap.add_argument('--no_record_size', action='store_true', help='skip the record-size estimate (synthetic cohort)')
    ap.add_argument('--json', default=None, help='results JSON (default benchmarks/results/gpu_train[-tiny]-<device>.json)')
    ap.add_argument('--results_md', default=str(G.RESULTS_MD), help="RESULTS.md to append to ('' to skip)")
    ap.add_argument('--note', default='')
    a = ap.parse_args(argv)
    import torch
    a.device = a.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    a.dtype = a.dtype or ('bfloat16' if a.device.startswith('cuda') else 'float32')
    a.stages = [int(s) for s in a.stages.split(',') if s]
    a.micro_batches = [int(m) for m in a.micro_batches.split(',') if m]
    a.ckpt_micro_batches = [int(m) for m in a.ckpt_micro_batches.split(',') if m]
    a.compile = a.device.startswith('cuda') if a.compile == 'auto' else a.compile in ('1', 'true', 'yes')
    if a.tiny: a.global_batch = min(a.global_batch, 8); a.micro_batches = [m for m in a.micro_batches if m <= a.global_batch] or [1]
    return a

def jpeg_pipeline_run(model, best:dict, steps, pixels, a, shape:dict) -> dict:
    "`best` again, fed by real JPEG decoding through a DataLoader with `a.data_workers` worker processes."
    sys.path.insert(0, str(G.HERE))
    from input_pipeline import make_jpegs, PairDataset
    from torch.utils.data import DataLoader
    tmp = tempfile.TemporaryDirectory()
    paths = make_jpegs(tmp.name, 8, size=(1272, 1528) if a.tiny else (2544, 3056))
    ds = PairDataset(paths, shape['image_size'], n_samples=10**6)
    dl = DataLoader(ds, batch_size=best['mb'], num_workers=a.data_workers, pin_memory=a.device.startswith('cuda'),
                    persistent_workers=a.data_workers > 0, prefetch_factor=4 if a.data_workers else None)
    v = {k: best[k] for k in ('stage', 'attn', 'gc', 'mb', 'order', 'loss', 'compile', 'library')}
    v['name'] = f"best + JPEG pipeline ({a.data_workers} workers)"
    r = run_config(model, v, steps, pixels, a, shape, loader=dl); del dl; tmp.cleanup()
    return r

def measure_stage(model, stage:int, a, attns:list[str], steps, pixels, shape:dict, t_start:float) -> list[dict]:
    "One stage's configurations: one factor at a time, the prototypes, `best`, and `best` fed by the JPEG pipeline."
    only = {s.strip() for s in a.variants.split(',') if s.strip()}
    ref, vs = stage_variants(stage, a, attns)
    results = []
    def measure(v):
        if only and v['name'] not in only and v['name'] not in ('reference', 'best'): return None
        if time.perf_counter() - t_start > a.time_budget: r = dict(v, status='skipped (time budget)')
        else: r = run_config(model, v, steps, pixels, a, shape)
        results.append(r); return r
    for v in vs: measure(v)
    base = fastest(results)
    best = None
    if base is not None:
        protos = [] if a.no_prototypes else [r for v in prototype_variants(base, a) if (r := measure(v)) is not None]
        best, helped = combine(base, protos)
        if helped: best = measure(best) or best
        else: results.append(best := dict(base, name='best', from_=base['name']))
    if a.data_workers >= 0 and best is not None and best.get('status') == 'ok':
        results.append(jpeg_pipeline_run(model, best, steps, pixels, a, shape))
    r_ref = next((r for r in results if r['name'] == 'reference' and r['status'] == 'ok'), None)
    for r in results:
        if r_ref and r['status'] == 'ok': r['vs_reference'] = r['samples_per_s'] / r_ref['samples_per_s']
    return results

def measure_all(a, shape:dict, res:dict, t_start:float):
    "Build the model and measure every stage of `a.stages` into `res` (flash_attn, flop_check, build_s, params, variants)."
    import torch
    have_fa2 = G.flash_attn_available()
    attns = [x for x in a.attn.split(',') if x and (x != 'flash_attention_2' or have_fa2)]
    a.reference_attn = a.reference_attn or ('flash_attention_2' if have_fa2 else 'sdpa')
    res.update(flash_attn=have_fa2, reference_attn=a.reference_attn, flop_check=G.flop_crosscheck(shape))
    print(f"FLOP formula check (analytic / FlopCounterMode): LM {res['flop_check']['lm_ratio']:.4f}, vision {res['flop_check']['vision_ratio']:.4f}", flush=True)
    dtype = getattr(torch, a.dtype)
    model, build_s = G.build_model(shape, a.device, dtype, attn=a.reference_attn, seed=a.seed)
    res['build_s'] = build_s
    res['params'] = dict(total=sum(p.numel() for p in model.parameters()),
                         language_model=sum(p.numel() for p in model.language_model.parameters()),
                         mm_projector=sum(p.numel() for p in model.mm_projector.parameters()),
                         vision_tower=sum(p.numel() for p in model.vision_tower.parameters()))
    print(f"built {res['params']['total'] / 1e6:,.1f} M parameters on {a.device} in {build_s:.1f} s", flush=True)
    n_steps = a.warmup + a.steps
    steps = [make_samples(shape, a.global_batch, a.seed * 1000 + k) for k in range(n_steps)]
    S = shape['image_size']
    gen = torch.Generator(device=a.device).manual_seed(a.seed)
    pixels = [torch.randn(a.global_batch, 2, 3, S, S, device=a.device, generator=gen).to(dtype) for _ in range(n_steps)]
    for stage in a.stages:
        prepare_stage(model, stage, a.lora_r, master_fp32=dtype != torch.float32)
        res['variants'] += measure_stage(model, stage, a, attns, steps, pixels, shape, t_start)
    del model; gc.collect()

def projection_inputs(runs:list[dict]) -> dict:
    "Stage -> its reference, best and fastest library-only results, from the runs that measured both (a later run wins)."
    by_stage = {}
    for d in runs:
        for st in {r['stage'] for r in d.get('variants', [])}:
            vs = [r for r in d['variants'] if r['stage'] == st and r.get('status') == 'ok']
            got = {r['name']: r for r in vs if r['name'] in ('reference', 'best')}
            if 'reference' in got and 'best' in got: by_stage[st] = dict(got, library=fastest(vs))
    return by_stage

def main(argv=None):
    a = parse(argv)
    import torch
    torch.set_num_threads(a.threads or (1 if a.device == 'cpu' else torch.get_num_threads()))
    if a.device.startswith('cuda'): torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    shape = G.SHAPES['tiny' if a.tiny else 'full']
    t_start = time.perf_counter()
    res = dict(benchmark='gpu_train', tiny=a.tiny, time=G.now_utc(), device=a.device, machine=G.machine(a.device),
               versions=G.versions(), command=G.command_line(), note=a.note, shape=shape, dtype=a.dtype,
               global_batch=a.global_batch, peak_tflops=a.peak_tflops, lora_r=a.lora_r, variants=[],
               flop_formula=G.__doc__ and open(G.__file__).read().split('# Model FLOPs')[1].split('LORA_TARGETS')[0].strip())
    prev = [json.loads(Path(p).read_text()) for p in a.from_json]
    if not a.projection_only: measure_all(a, shape, res, t_start)
    rec = None if a.no_record_size else mean_record_bytes()
    res['projection'] = projection(projection_inputs(prev + [res]), rec)
    res['wall_s'] = time.perf_counter() - t_start
    G.finish(res, a.json or G.HERE/'results'/f"gpu_train{'-tiny' if a.tiny else ''}-{a.device.split(':')[0]}.json", a.results_md, markdown(res, a))
    return res

def markdown(res:dict, a) -> str:
    label = ('CPU tiny smoke run: tiny shapes, NOT a performance figure' if a.tiny and a.device == 'cpu' else
             'tiny shapes, not a performance figure' if a.tiny else f"Libra-7B shapes, {res['dtype']}")
    md = [f"### {res['time']} — gpu_train ({label})", '',
          f"Machine: {res['machine']}; torch {res['versions']['torch']}, transformers {res['versions']['transformers']}, "
          f"peft {res['versions'].get('peft')}, flash_attn {res['versions'].get('flash_attn', 'not installed')}.  ",
          f"Command: `{res['command']}`  "]
    if res.get('variants'):
        s = res['shape']
        md.append(f"Model: Dinov2 {s['v_layers']}x{s['v_hidden']} at {s['image_size']} px ({G.n_image_tokens(s)} image tokens), TAC, "
                  f"Llama {s['layers']}x{s['hidden']} (MLP {s['mlp']}, vocab {s['vocab']}); {res['params']['total'] / 1e6:,.1f} M parameters, "
                  f"random weights, built on the device in {res['build_s']:.1f} s. Text {s['text_min']}-{s['text_max']} tokens + 2 images per sample; "
                  f"global batch {res['global_batch']}; {a.warmup} warm-up + {a.steps} timed optimiser steps per configuration (median). "
                  f"MFU against {res['peak_tflops']:.0f} TFLOP/s with the FLOP formula in `benchmarks/gpu_common.py` "
                  f"(check against FlopCounterMode: LM {res['flop_check']['lm_ratio']:.3f}, vision {res['flop_check']['vision_ratio']:.3f}). "
                  f"Reference attention: {res['reference_attn']}." + (f"  \nNote: {res['note']}" if res['note'] else ''))
        rows = [dict(r, ckpt='on' if r['gc'] else 'off', lib='yes' if r['library'] else 'no',
                     status=r['status'] if r['status'] == 'ok' else f"{r['status']}") for r in res['variants']]
        md += ['', G.md_table(rows, [('stage', 'stage', 'd'), ('config', 'name', ''), ('attn', 'attn', ''), ('ckpt', 'ckpt', ''),
                                     ('micro-batch', 'mb', 'd'), ('library', 'lib', ''), ('status', 'status', ''),
                                     ('step s', 'step_s', '.3f'), ('samples/s', 'samples_per_s', '.2f'), ('tokens/s', 'tokens_per_s', ',.0f'),
                                     ('pad %', 'pad_frac', '.1%'), ('MFU', 'mfu', '.1%'), ('peak GiB', 'peak_gib', '.1f'),
                                     ('x reference', 'vs_reference', '.2f'), ('data wait', 'data_wait_frac', '.1%')])]
    if res.get('projection', {}).get('stages'):
        pm = projection_md(res['projection'])
        if a.tiny: pm[1] = '(Tiny shapes: the projection below only exercises the code; its figures mean nothing.) ' + pm[1]
        md += pm
    return '\n'.join(md)

if __name__ == '__main__': main()
