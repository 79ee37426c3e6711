"""`i2i study CONFIG [key=value ...]`: the domain-adaptation study; a rerun continues where it stopped."""

from __future__ import annotations

import sys

#: exit status of a study stopped on purpose by its ``interrupt`` setting (a rerun continues it)
INTERRUPTED = 3


def register(sub) -> None:
    parser = sub.add_parser(
        "study",
        help="run the domain-adaptation study (translators, segmenters, results table)",
        description="Run the study described by CONFIG (see configs/study_*.yaml). Later key=value "
        "arguments override the YAML (e.g. segmenter.seeds=[0,1,2] data.synthetic.target=dusk). Every "
        "stage is cached in the run folder: re-running the same command skips finished stages and "
        "continues a killed one from its last checkpoint.",
    )
    parser.add_argument("config", help="study YAML (see configs/study_*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.set_defaults(func=run)


def run(args) -> int:
    # the study lives in apps/, above the toolkit: imported only when the command runs
    from apps.study.config import load_study_config
    from apps.study.pipeline import run_study
    from apps.study.stages import Interrupted
    from apps.study.variants import run_variants

    cfg = load_study_config(args.config, args.overrides)
    if args.print_config:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        return 0
    try:
        if cfg.variants:
            run_variants(args.config, args.overrides, cfg, run_study)
        else:
            run_study(cfg)
    except Interrupted as exc:
        print(f"i2i study: {exc}; run the same command again to continue", file=sys.stderr)
        return INTERRUPTED
    print(f"results: {cfg.out_dir}/{'summary' if cfg.variants else 'results'}.md")
    return 0
