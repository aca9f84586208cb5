"""Report generation speed of a Libra-7B-shaped model (random weights): batched `generate` vs the one-study-at-a-time loop.

Same model as `gpu_train.py` (built on the device, bf16, SDPA by default). Inputs come from `LibraProcessor`
(libra_v1 prompt, left padding for generation, current/prior pixel values; the tokenizer is the library's tiny
in-memory BPE tokenizer, whose ids are valid in the 32000-token vocabulary), queries are Libra's findings prompt with a
clinical context of random length so that prompts differ in length. Every report is forced to exactly `--new_tokens`
tokens (`min_new_tokens = max_new_tokens`; random weights never stop by themselves), so both modes do the same work.

Modes, each timed end to end (processor + `generate`) and `generate` alone:
  greedy (upstream's libra_eval default decoding but deterministic): one study per call (the reference loop) vs
  batches of `--batch` (32); paper preset (10 beams, length penalty 2, no_repeat_ngram_size 3, as
  `libra_nb.inference.decoding_kwargs`): one study per call vs batches of `--beam_batch`.
A check compares the batched greedy outputs with the one-by-one outputs of the same studies (token-identical count).

    python benchmarks/gpu_generate.py --tiny --device cpu        # CPU smoke run (< 60 s)
    python benchmarks/gpu_generate.py --json $OUT/gen.json --results_md ''   # H100 (a few minutes)
"""
from __future__ import annotations
import argparse, gc, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_common as G

WORDS = ('cough', 'fever', 'dyspnea', 'chest', 'pain', 'evaluate', 'for', 'pneumonia', 'effusion', 'history', 'of', 'heart',
         'failure', 'status', 'post', 'line', 'placement', 'comparison', 'prior', 'study', 'technique', 'portable', 'AP', 'view')

def make_studies(n:int, image_side:int, seed:int=0):
    "`n` (current, prior) PIL pairs from the example images (resized to `image_side`, lightly varied) and queries of varied length."
    import random
    from PIL import Image, ImageOps
    from libra_nb.core import DEFAULT_PROMPT
    from input_pipeline import example_sources
    rng = random.Random(seed)
    base = []
    for p in example_sources():
        im = Image.open(p).convert('L'); s = image_side / max(im.size)
        base.append(im.resize((max(1, int(im.width * s)), max(1, int(im.height * s))), Image.BICUBIC))
    studies, queries = [], []
    for i in range(n):
        cur, pri = base[0], base[1]
        if i % 2: cur, pri = ImageOps.mirror(cur), ImageOps.mirror(pri)
        studies.append([cur.convert('RGB'), pri.convert('RGB')])
        k = rng.randint(0, 40)
        ctx = ' '.join(rng.choice(WORDS) for _ in range(k))
        queries.append(DEFAULT_PROMPT + (f" Following clinical context: Indication: {ctx}." if k else ''))
    return studies, queries

def run_mode(model, processor, studies, queries, batch:int, gen_kw:dict, device:str, dtype) -> dict:
    "Generate for all `studies` in batches of `batch`; times of the processor and of `generate`, the new token ids."
    import torch
    t_proc = t_gen = 0.0; outs = []
    cuda = device.startswith('cuda')
    if cuda: torch.cuda.reset_peak_memory_stats()
    for s in range(0, len(studies), batch):
        G.sync(device); t0 = time.perf_counter()
        inp = processor(images=studies[s:s + batch], text=queries[s:s + batch]).to(device)
        inp['pixel_values'] = inp['pixel_values'].to(dtype)
        G.sync(device); t1 = time.perf_counter()
        with torch.inference_mode(): out = model.generate(**inp, **gen_kw)
        G.sync(device); t2 = time.perf_counter()
        t_proc += t1 - t0; t_gen += t2 - t1
        k = out.shape[0] // inp['input_ids'].shape[0]
        outs += [o.tolist() for o in out[::k, inp['input_ids'].shape[1]:].cpu()]
    n = len(studies); tot = t_proc + t_gen
    return dict(studies=n, batch=batch, seconds=tot, processor_s=t_proc, generate_s=t_gen, reports_per_s=n / tot,
                generate_reports_per_s=n / t_gen, new_tokens_per_s=sum(map(len, outs)) / t_gen,
                peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None, outputs=outs)

def parse(argv=None):
    "Command-line options, with the device/dtype defaults and the `--tiny` caps filled in."
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tiny', action='store_true', help='tiny shapes (CPU smoke run)')
    ap.add_argument('--device', default=None); ap.add_argument('--dtype', default=None)
    ap.add_argument('--attn', default='sdpa', help="LM/vision attention: 'sdpa', 'eager' or 'flash_attention_2'")
    ap.add_argument('--batch', type=int, default=32, help='studies per batched generate call (greedy)')
    ap.add_argument('--n_batched', type=int, default=64, help='studies generated in batched greedy mode')
    ap.add_argument('--n_single', type=int, default=8, help='studies generated one by one (greedy)')
    ap.add_argument('--new_tokens', type=int, default=100, help='tokens per report (forced; MIMIC findings are ~60-120 Llama tokens)')
    ap.add_argument('--beam_batch', type=int, default=4, help='studies per batched call with the paper preset (x10 beams)')
    ap.add_argument('--n_beam_batched', type=int, default=8); ap.add_argument('--n_beam_single', type=int, default=3)
    ap.add_argument('--no_paper', action='store_true', help='skip the 10-beam paper preset')
    ap.add_argument('--image_side', type=int, default=1024, help='longest side of the input PIL images (packaged examples: 1024)')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', default=None); ap.add_argument('--results_md', default=str(G.RESULTS_MD)); ap.add_argument('--note', default='')
    a = ap.parse_args(argv)
    import torch
    a.device = a.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    a.dtype = a.dtype or ('bfloat16' if a.device.startswith('cuda') else 'float32')
    if a.tiny:
        a.batch, a.n_batched, a.n_single, a.new_tokens = min(a.batch, 8), min(a.n_batched, 16), min(a.n_single, 4), min(a.new_tokens, 12)
        a.beam_batch, a.n_beam_batched, a.n_beam_single, a.image_side = 2, 4, 2, min(a.image_side, 256)
    return a

def setup(a) -> dict:
    "Model, processor, studies, the two decoding presets and the prompt lengths; one untimed warm-up call."
    import torch
    from libra_nb.modeling import LibraProcessor
    from libra_nb.imaging import rad_dino_processor
    from libra_nb.conversation import train_tiny_tokenizer
    from libra_nb.inference import decoding_kwargs
    shape = G.SHAPES['tiny' if a.tiny else 'full']
    dtype = getattr(torch, a.dtype)
    model, build_s = G.build_model(shape, a.device, dtype, attn=a.attn, seed=a.seed)
    processor = LibraProcessor(rad_dino_processor(size=shape['image_size']), train_tiny_tokenizer())
    n = max(a.n_batched, a.n_single, a.n_beam_batched, a.n_beam_single)
    studies, queries = make_studies(n, a.image_side, a.seed)
    tok = processor.tokenizer
    fixed = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    greedy = dict(decoding_kwargs(temperature=0, max_new_tokens=a.new_tokens), **fixed)
    paper = dict(decoding_kwargs(temperature=0, num_beams=10, length_penalty=2.0, max_new_tokens=a.new_tokens), **fixed)
    prompt_lens = [len(processor(images=[s], text=[q])['input_ids'][0]) for s, q in zip(studies[:16], queries[:16])]
    run_mode(model, processor, studies[:1], queries[:1], 1, dict(greedy, max_new_tokens=2, min_new_tokens=2), a.device, dtype)  # warm-up
    return dict(shape=shape, dtype=dtype, model=model, build_s=build_s, processor=processor, studies=studies, queries=queries,
                presets=dict(greedy=greedy, paper=paper), prompt_lens=prompt_lens)

def measure_mode(a, ctx:dict, name:str, preset:str, batch:int, k:int) -> dict:
    "One mode on the first `k` studies (OOM recorded, not raised); prints its line."
    import torch
    r = dict(mode=name, preset=preset)
    try: r.update(run_mode(ctx['model'], ctx['processor'], ctx['studies'][:k], ctx['queries'][:k], batch, ctx['presets'][preset], a.device, ctx['dtype']))
    except torch.OutOfMemoryError as e: r.update(status='OOM', error=str(e).split('\n')[0][:200])
    finally:
        gc.collect()
        if a.device.startswith('cuda'): torch.cuda.empty_cache()
    print(f"  {name:<28} " + (f"{r['reports_per_s']:.3f} reports/s ({r['generate_reports_per_s']:.3f} generate only)" if 'reports_per_s' in r else r.get('status', '?')), flush=True)
    return r

def measure(a, ctx:dict) -> dict:
    "All modes, keyed single / batched (greedy) and bsingle / bbatched (paper preset, unless --no_paper)."
    runs = dict(single=('one by one (greedy)', 'greedy', 1, a.n_single),
                batched=(f'batched {a.batch} (greedy)', 'greedy', a.batch, a.n_batched))
    if not a.no_paper:
        runs.update(bsingle=('one by one (paper preset)', 'paper', 1, a.n_beam_single),
                    bbatched=(f'batched {a.beam_batch} (paper preset)', 'paper', a.beam_batch, a.n_beam_batched))
    return {key: measure_mode(a, ctx, *spec) for key, spec in runs.items()}

def compare(a, m:dict) -> tuple[dict, dict|None]:
    "Batched / one-by-one speed ratios and the token-identity check of the greedy outputs."
    ratios, check = {}, None
    single, batched = m['single'], m['batched']
    if 'reports_per_s' in single and 'reports_per_s' in batched:
        ratios['greedy'] = batched['reports_per_s'] / single['reports_per_s']
        ratios['greedy_generate_only'] = batched['generate_reports_per_s'] / single['generate_reports_per_s']
        k = min(a.n_single, a.n_batched)
        same = sum(x == y for x, y in zip(single['outputs'][:k], batched['outputs'][:k]))
        prefix = statistics.mean(next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), len(x)) / max(1, len(x))
                                 for x, y in zip(single['outputs'][:k], batched['outputs'][:k]))
        check = dict(compared=k, identical=same, mean_common_prefix=prefix)
    if not a.no_paper and 'reports_per_s' in m['bsingle'] and 'reports_per_s' in m['bbatched']:
        ratios['paper'] = m['bbatched']['reports_per_s'] / m['bsingle']['reports_per_s']
        ratios['paper_generate_only'] = m['bbatched']['generate_reports_per_s'] / m['bsingle']['generate_reports_per_s']
    return ratios, check

def markdown(res:dict, a) -> str:
    "The RESULTS.md section of a result."
    shape, ratios, check = res['shape'], res['ratios'], res['batched_vs_single_check']
    label = ('CPU tiny smoke run: tiny shapes, NOT a performance figure' if a.tiny and a.device == 'cpu' else
             'tiny shapes, not a performance figure' if a.tiny else f"Libra-7B shapes, {a.dtype}, {a.attn}")
    md = [f"### {res['time']} — gpu_generate ({label})", '',
          f"Machine: {res['machine']}; torch {res['versions']['torch']}, transformers {res['versions']['transformers']}.  ",
          f"Command: `{res['command']}`  ",
          f"Model built on the device in {res['build_s']:.1f} s (random weights). Each report is forced to {a.new_tokens} new tokens; prompts "
          f"{res['prompt_tokens']['min']}-{res['prompt_tokens']['max']} tokens before the {G.n_image_tokens(shape)} image tokens "
          f"(tiny BPE tokenizer); input PIL images {a.image_side} px (decoding not timed; preprocessing is, in the processor column)."
          + (f"  \nNote: {a.note}" if a.note else ''), '',
          G.md_table(res['modes'], [('mode', 'mode', ''), ('studies', 'studies', 'd'), ('batch', 'batch', 'd'), ('processor s', 'processor_s', '.2f'),
                                    ('generate s', 'generate_s', '.2f'), ('reports/s', 'reports_per_s', '.3f'),
                                    ('reports/s (generate only)', 'generate_reports_per_s', '.3f'), ('new tokens/s', 'new_tokens_per_s', ',.0f'),
                                    ('peak GiB', 'peak_gib', '.1f')]), '',
          'Batched / one-by-one: ' + ', '.join(f"{k.replace('_', ' ')} {v:.1f}x" for k, v in ratios.items()) +
          f" — goal >= 10x (greedy) {'met' if res['goal_10x_met'] else 'NOT met'}."]
    if check: md.append(f"Batched vs one-by-one greedy outputs of the same {check['compared']} studies: {check['identical']} token-identical, "
                        f"mean common prefix {check['mean_common_prefix']:.0%} (random weights: near-ties in bf16 can flip the argmax).")
    return '\n'.join(md)

def main(argv=None):
    a = parse(argv)
    import torch
    torch.set_num_threads(a.threads or (1 if a.device == 'cpu' else torch.get_num_threads()))
    t_start = time.perf_counter()
    ctx = setup(a)
    m = measure(a, ctx)
    ratios, check = compare(a, m)
    modes = list(m.values())
    for r in modes: r.pop('outputs', None)
    res = dict(benchmark='gpu_generate', tiny=a.tiny, time=G.now_utc(), device=a.device, machine=G.machine(a.device),
               versions=G.versions(), command=G.command_line(), note=a.note, shape=ctx['shape'], dtype=a.dtype, attn=a.attn,
               build_s=ctx['build_s'], new_tokens=a.new_tokens, image_side=a.image_side,
               prompt_tokens=dict(min=min(ctx['prompt_lens']), max=max(ctx['prompt_lens'])),
               modes=modes, ratios=ratios, batched_vs_single_check=check, goal_10x_met=ratios.get('greedy', 0) >= 10,
               wall_s=time.perf_counter() - t_start)
    G.finish(res, a.json or G.HERE/'results'/f"gpu_generate{'-tiny' if a.tiny else ''}-{a.device.split(':')[0]}.json", a.results_md, markdown(res, a))
    return res

if __name__ == '__main__': main()
