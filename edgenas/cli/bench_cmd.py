"""``edgenas bench``: search quality on tabular benchmarks (NAS-Bench-201 with real device latency)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from edgenas.cli._output import console, emit
from edgenas.cli.common import JSON
from edgenas.errors import InputError

app = typer.Typer(help="Score search strategies against a tabular benchmark's true constrained optimum.",
                  no_args_is_help=True)

DEFAULT_STRATEGIES = "random,evolution,local,gp-ei,reinforce"


@app.command("nb201")
def nb201_cmd(
    latency: str = typer.Option("hwnas:pi5-litert", "--latency",
                                help="hwnas:pi5-litert | hwnas:pi5-onnx | hwnas:pi5-torchmobile | hwnas:pixel-litert, "
                                     "or a CSV 'genotype,latency_ms' (NAS-Bench-201 arch_str per row)."),
    accuracy: str = typer.Option("hwnas:cifar100", "--accuracy",
                                 help="hwnas:cifar100 (NAS-Bench-201 CIFAR-100 test accuracy) "
                                      "or a CSV 'genotype,accuracy'."),
    hwnasbench: Optional[Path] = typer.Option(None, "--hwnasbench", envvar="EDGENAS_HWNASBENCH",
                                              help="Your copy of HW-NAS-Bench-360's dataset.parquet (or its folder)."),
    target_ms: Optional[float] = typer.Option(None, "--target-ms", help="Latency target in ms."),
    target_quantile: Optional[float] = typer.Option(None, "--target-quantile",
                                                    help="Target as a quantile of the true latency of connected "
                                                         "archs (e.g. 0.25)."),
    strategies: str = typer.Option(DEFAULT_STRATEGIES, "--strategies", help="Comma-separated black-box strategies."),
    queries: int = typer.Option(300, "--queries", help="Architectures evaluated per run."),
    seeds: int = typer.Option(10, "--seeds", help="Runs per strategy (seeds 0..K-1)."),
    fit_n: int = typer.Option(0, "--fit-n",
                              help="Realistic mode: the search sees latency predicted by a model fitted on N "
                                   "measured nets."),
    margin_quantile: float = typer.Option(0.95, "--margin-quantile",
                                          help="--fit-n: the target is divided by this conformal quantile of the "
                                               "model's held-out ratios measured/predicted on the N nets (the "
                                               "chance a predicted-feasible net is feasible)."),
    verify_k: int = typer.Option(0, "--verify-k",
                                 help="--fit-n: before picking, measure at most K queried candidates (largest "
                                      "P(feasible) x accuracy gain first) and pick the most accurate that measures "
                                      "under the target; reports the extra measurements."),
    active: int = typer.Option(0, "--active",
                               help="--verify-k: measure up to A more networks during the search (one every 20 "
                                    "queries, the accurate candidate whose feasibility is least certain) and refit "
                                    "the model and its margin on each; reported with the extra measurements."),
    local_margin: int = typer.Option(0, "--local-margin",
                                     help="--verify-k: learn the margin from only the N measured nets predicted "
                                          "nearest the target (0: all of them)."),
    plot: Optional[Path] = typer.Option(None, "--plot",
                                        help="Write a regret-vs-queries PNG with 95% confidence bands."),
    as_json: bool = JSON,
):
    """Run black-box strategies on NAS-Bench-201 and score their picks on true accuracy and latency.

    Examples:
      edgenas bench nb201 --hwnasbench dataset.parquet --latency hwnas:pi5-litert --target-quantile 0.25
      edgenas bench nb201 --latency my_phone.csv --target-ms 12 --strategies random,gp-ei --fit-n 100
    """
    from edgenas.bench import nb201, sources

    if (target_ms is None) == (target_quantile is None):
        raise InputError("give exactly one of --target-ms and --target-quantile")
    if target_ms is not None and target_ms <= 0:
        raise InputError(f"--target-ms must be positive, got {target_ms}")
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    if not names:
        raise InputError("--strategies is empty")
    lat = sources.load_latency(latency, hwnasbench)
    acc = sources.load_accuracy(accuracy, hwnasbench)
    table = nb201.Table(acc, lat, sources.load_representatives(latency, hwnasbench))
    target = target_ms if target_ms is not None else table.target_for_quantile(target_quantile)
    res = nb201.run_bench(table, target, names, queries, seeds, fit_n=fit_n, margin_quantile=margin_quantile,
                         verify_k=verify_k, active=active, local_n=local_margin)
    out = {"latency": latency, "accuracy": accuracy, **res.as_dict()}
    if plot:
        nb201.plot(res, plot, title=f"{latency}, target {target:.4g} ms, optimum {res.optimum:.2f}%"
                   + (f", fit on {fit_n} nets" if fit_n else ""))
        out["plot"] = str(plot)

    def render(r):
        mode = f"latency model fitted on {fit_n} nets" if fit_n else "exact latency"
        console.print(f"[bold]NAS-Bench-201[/bold] {latency} / {accuracy}: target {r['target_ms']:.4g} ms "
                      f"({r['feasible_archs']} feasible archs), optimum {r['optimum']:.2f}%, {mode}, "
                      f"{seeds} seeds x {queries} queries")
        for name, s in r["strategies"].items():
            at = s["at"]
            cells = ", ".join(f"@{q}: {v['regret_mean']:.2f} ± {v['regret_std']:.2f}"
                              if math.isfinite(v["regret_mean"]) else f"@{q}: n/a" for q, v in at.items())
            last = at[str(queries)]
            med = s["within_0.5_median_queries"]
            check = (f"; {last['measurements_mean']:.1f} extra measurements (max {last['measurements_max']}, "
                     f"{last['active_mean']:.1f} during the search), "
                     f"{100 * last['verified_share']:.0f}% verified" if "measurements_mean" in last else "")
            console.print(f"  {name:10s} regret {cells}; feasible {100 * last['feasible_share']:.0f}%; within 0.5: "
                          f"{'median ' + format(med, '.0f') + ' queries' if med else 'never'} "
                          f"({100 * s['within_0.5_share']:.0f}% of seeds)"
                          + (f"; margin x{s['margin_mean']:.3f}" if fit_n else "") + check)
        if plot:
            console.print(f"  plot: {plot}")

    emit(out, as_json, render)
