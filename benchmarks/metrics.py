"""Time libra_nb's NLG suite against Libra's way of computing the same numbers, and check they agree.

Libra's `evaluate_report` makes one Hugging Face `evaluate` call per metric: "bleu" four times (max_order
1..4, each tokenising and counting n-grams again), "rouge" (four ROUGE types, then a 1000-resample bootstrap
median), "meteor" (nltk.word_tokenize + single_meteor_score per pair) and temporal F1. `evaluate.load` needs
the hub, so those calls are reproduced here from the same libraries (sacrebleu's 13a tokenizer, the
nmt-style corpus BLEU, rouge-score with its BootstrapAggregator, NLTK's METEOR) and CIDEr-D is added as a
plain pycocoevalcap call. Results go to benchmarks/RESULTS.md under `## metrics`.

    python benchmarks/metrics.py --n 3000
"""
import argparse, collections, datetime, math, os, platform, random, sys, time
from pathlib import Path
from results_md import append_results

import numpy as np

from libra_nb.metrics import NLG_METRICS, evaluate_reports, nltk_wordnet, prepare_report, temporal_f1, tokenize_13a
from libra_nb.nlg import _punkt

# ---------------------------------------------------------------- synthetic reports
SENTENCES = [
    "the heart size is {size} .", "there is {deg} {side} pleural effusion .", "no focal consolidation is seen .",
    "{deg} pulmonary edema has {trend} since the prior study .", "{side} basilar opacity is {trend2} .",
    "the {dev} terminates {cm} cm above the carina .", "no pneumothorax .", "the lungs are clear .",
    "mediastinal and hilar contours are {state} .", "{deg} atelectasis at the {side} lung base .",
    "there is a new {side} {loc} nodule measuring {cm} mm .", "osseous structures are {state} .",
    "the cardiomediastinal silhouette is {trend2} .", "{deg} interstitial markings are {trend2} .",
    "compared to the prior radiograph , the {dev} has been {moved} .", "there is no evidence of free air .",
]
SLOTS = dict(size=["normal", "enlarged", "mildly enlarged", "at the upper limits of normal"],
             deg=["a small", "a moderate", "a large", "mild", "moderate", "severe", "trace"],
             side=["right", "left", "bilateral"], trend=["improved", "worsened", "increased", "decreased", "resolved"],
             trend2=["unchanged", "stable", "new", "increased", "decreased", "improving", "worsening", "larger", "smaller"],
             dev=["endotracheal tube", "nasogastric tube", "right picc line", "left chest tube"],
             cm=[str(x) for x in (1.5, 2, 3, 4.5, 5, 6, 8, 12)], loc=["upper lobe", "lower lobe", "perihilar", "apical"],
             state=["within normal limits", "unremarkable", "stable", "normal"], moved=["removed", "advanced", "withdrawn"])

def fill(s, rng): return s.format(**{k: rng.choice(v) for k, v in SLOTS.items()})

def make_pairs(n, seed=0):
    "n (prediction, reference) pairs: references of 3-7 sentences, predictions that keep, rewrite or drop them."
    rng, preds, refs = random.Random(seed), [], []
    for _ in range(n):
        tmpl = rng.sample(SENTENCES, rng.randint(3, 7))
        ref = [fill(s, rng) for s in tmpl]
        pred = [fill(s, rng) if rng.random() < 0.4 else r for s, r in zip(tmpl, ref) if rng.random() > 0.2]
        if rng.random() < 0.5: pred.append(fill(rng.choice(SENTENCES), rng))
        refs.append("FINDINGS: " + " ".join(ref).capitalize())
        preds.append(" ".join(pred).capitalize())
    return preds, refs

# ---------------------------------------------------------------- Libra's way, one evaluate-style call per metric
_tok_cache = {}
def evaluate_13a(line):
    "evaluate's bleu tokenizer: sacrebleu 13a returning a token list (lru-cached there, as here)."
    if line not in _tok_cache: _tok_cache[line] = tokenize_13a(line)
    return _tok_cache[line]

def nmt_bleu(reference_corpus, translation_corpus, max_order):
    "Corpus BLEU as evaluate's nmt_bleu.compute_bleu (no smoothing), one reference per segment."
    matches, possible = [0] * max_order, [0] * max_order
    ref_len = hyp_len = 0
    for ref, hyp in zip(reference_corpus, translation_corpus):
        ref_len, hyp_len = ref_len + len(ref), hyp_len + len(hyp)
        ngr = lambda t: collections.Counter(tuple(t[i:i + n]) for n in range(1, max_order + 1) for i in range(len(t) - n + 1))
        for g, c in (ngr(hyp) & ngr(ref)).items(): matches[len(g) - 1] += c
        for n in range(1, max_order + 1):
            if len(hyp) - n + 1 > 0: possible[n - 1] += len(hyp) - n + 1
    prec = [m / p if p > 0 else 0. for m, p in zip(matches, possible)]
    geo = math.exp(sum(math.log(p) / max_order for p in prec)) if min(prec) > 0 else 0.
    ratio = hyp_len / ref_len
    return geo * (1. if ratio > 1 else math.exp(1 - 1 / ratio))

def libra_bleu(preds, refs, max_order):
    return nmt_bleu([evaluate_13a(r) for r in refs], [evaluate_13a(p) for p in preds], max_order)

def libra_rouge_l(preds, refs):
    from rouge_score import rouge_scorer, scoring
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=False)
    agg = scoring.BootstrapAggregator()
    for r, p in zip(refs, preds): agg.add_scores(scorer.score(r, p))
    return agg.aggregate()["rougeL"].mid.fmeasure

def nltk_word_tokenize(text):
    "nltk.word_tokenize as evaluate calls it: Punkt sentences, then a fresh Treebank pass per sentence (no memo)."
    from nltk.tokenize import NLTKWordTokenizer
    return [t for s in _punkt().tokenize(text) for t in NLTKWordTokenizer().tokenize(s)]

def libra_meteor(preds, refs, wordnet):
    from nltk.translate.meteor_score import single_meteor_score
    return float(np.mean([single_meteor_score(nltk_word_tokenize(r), nltk_word_tokenize(p), wordnet=wordnet) for r, p in zip(refs, preds)]))

def libra_cider(preds, refs):
    from pycocoevalcap.cider.cider import Cider
    gts = {i: [" ".join(tokenize_13a(r))] for i, r in enumerate(refs)}
    res = {i: [" ".join(tokenize_13a(p))] for i, p in enumerate(preds)}
    return Cider().compute_score(gts, res)[0]

def timed(fn, *a):
    t, c = time.perf_counter(), time.process_time()
    out = fn(*a)
    return out, time.perf_counter() - t, time.process_time() - c

def libra_way(raw_preds, raw_refs, wordnet):
    "Libra's evaluate_report (+ CIDEr-D): clean once, then one call per metric. Returns scores x100 and times."
    scores, times = {}, {}
    (preds, refs), times['clean'], _ = timed(lambda: ([prepare_report(t) for t in raw_preds], [prepare_report(t) for t in raw_refs]))
    for k in range(1, 5): scores[f'BLEU{k}'], times[f'BLEU{k}'], _ = timed(libra_bleu, preds, refs, k)
    scores['METEOR'], times['METEOR'], _ = timed(libra_meteor, preds, refs, wordnet)
    scores['ROUGE-L'], times['ROUGE-L'], _ = timed(libra_rouge_l, preds, refs)
    scores['CIDEr-D'], times['CIDEr-D'], _ = timed(libra_cider, preds, refs)
    scores['Temporal_entity_score'], times['Temporal_entity_score'], _ = timed(lambda: temporal_f1(preds, refs)['f1'])
    return {k: 100 * v for k, v in scores.items()}, times

# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000, help="number of synthetic report pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(Path(__file__).parent / "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--note", default="CPU shared with up to 8 parallel helpers (2 cores): wall times are upper bounds; CPU s is this process only")
    args = ap.parse_args()

    preds, refs = make_pairs(args.n, args.seed)
    load0 = os.getloadavg()
    wn, t_wn, _ = timed(nltk_wordnet)  # loaded once, outside both timings
    wn.synsets("warm")

    libra_scores, libra_times = None, None
    (libra_scores, libra_times), libra_wall, libra_cpu = timed(libra_way, preds, refs, wn)
    ours, our_wall, our_cpu = timed(evaluate_reports, preds, refs, list(NLG_METRICS))
    ours = ours.corpus

    rows, ok = [], True
    for k in NLG_METRICS:
        diff = ours[k] - libra_scores[k]
        tol = 0.1 if k == 'ROUGE-L' else 1e-9   # ROUGE-L: our mean vs evaluate's (unseeded) bootstrap median
        ok &= abs(diff) <= tol
        rows.append(f"| {k} | {libra_scores[k]:.4f} | {ours[k]:.4f} | {diff:+.2e} | {libra_times[k]:.2f} |")
    n_unique = len(set(zip(preds, refs)))
    text = [
        f"### {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — `python benchmarks/metrics.py --n {args.n} --seed {args.seed}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, load average "
        f"{load0[0]:.1f}, {load0[1]:.1f}, {load0[2]:.1f} at start; Python {platform.python_version()}.  ",
        f"Note: {args.note}.  ",
        f"Data: {args.n} synthetic report pairs ({n_unique} distinct), mean reference length "
        f"{np.mean([len(tokenize_13a(prepare_report(r))) for r in refs]):.0f} tokens. WordNet loaded once beforehand ({t_wn:.1f} s).",
        "The reports are built from 16 sentence templates with random slots, so sentences repeat as in real reports; part of the "
        "METEOR gain is the per-sentence memo of NLTK's Treebank tokenizer, which helps less on a corpus whose sentences never repeat.",
        "",
        "| suite | wall s | CPU s |", "|---|---:|---:|",
        f"| Libra's way (one evaluate-style call per metric) | {libra_wall:.2f} | {libra_cpu:.2f} |",
        f"| `evaluate_reports(metrics='nlg')` | {our_wall:.2f} | {our_cpu:.2f} |",
        f"| speed-up | {libra_wall / our_wall:.1f}x | {libra_cpu / our_cpu:.1f}x |",
        "",
        "| metric | Libra's way | libra_nb | difference | Libra's way s |", "|---|---:|---:|---:|---:|", *rows,
        "",
        f"Scores agree: {'yes' if ok else 'NO'} (exact to 1e-9 except ROUGE-L, where Libra's number is a bootstrap "
        "median of the per-report F and ours the mean; tolerance 0.1 points).",
        "",
    ]
    print("\n".join(text))
    if not args.no_write:
        append_results("\n".join(text), "## metrics", Path(args.results))
    sys.exit(0 if ok else 1)

if __name__ == "__main__": main()
