"""manage.py evaluate_recommender --ratings FILE | --baskets FILE | --tenant SLUG [--json]"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from offers.recommender import evaluation

HELP = """Compare the recommendation models offline and show which one is shipped.

--ratings FILE: tab-separated user, item, rating, time (MovieLens u.data); every rating counts as
one interaction; random 80/20 split per seed (3 seeds by default); P@10, R@10, NDCG@10.
--baskets FILE: one basket per line, items comma-separated (Groceries); one random item held out
of each basket of 2+ items; HR@10 and NDCG@10.
--tenant SLUG: that tenant's paid orders, add-to-carts, offer clicks and product views (order >
cart > click > view); random split, or --split time for the latest 20 %.

Every candidate (most popular, item-kNN, EASE, EASE with emphasis "edlae", RP3beta, ALS) and the
shipped blend is tuned on validation splits carved out of the training split (never the test
split), refitted on the training split and measured on the test split, all in one run (a few
minutes for MovieLens 100k on 2 cores). The table gives the means over seeds, the mean fit time,
and P@10 (HR@10) and NDCG@10 per seed; the shipped model is marked *. --json prints one JSON
object instead, with every figure, every chosen hyper-parameter and "shipped". Progress goes to
stderr (-v 0 silences it).

Exit status: 0 after the comparison; 1 on an unreadable file, an unknown tenant, or data too
small to split."""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--ratings", metavar="FILE", help="user<TAB>item<TAB>rating<TAB>time lines (MovieLens u.data)")
        source.add_argument("--baskets", metavar="FILE", help="one basket per line, items separated by commas")
        source.add_argument("--tenant", metavar="SLUG", help="a tenant's own orders and events")
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
        parser.add_argument("--seeds", type=int, nargs="+", default=list(evaluation.SEEDS), help="split seeds (default 0 1 2)")
        parser.add_argument("--folds", type=int, default=evaluation.VALIDATION_FOLDS,
                            help=f"validation splits per seed for tuning the models (default {evaluation.VALIDATION_FOLDS})")
        parser.add_argument("--blend-folds", type=int, default=evaluation.BLEND_FOLDS,
                            help=f"validation splits per seed for choosing the blend's mix (default {evaluation.BLEND_FOLDS})")
        parser.add_argument("--split", choices=["random", "time"], default="random", help="tenant data: random or latest 20 %%")
        parser.add_argument("--k", type=int, default=evaluation.K, help="cut-off (default 10)")

    def handle(self, *args: Any, **options: Any) -> None:
        if min(options["k"], options["folds"], options["blend_folds"]) < 1:
            raise CommandError("--k, --folds and --blend-folds must be at least 1")
        try:
            dataset = self._dataset(options)
            progress = (lambda message: print(message, file=sys.stderr, flush=True)) if options["verbosity"] >= 1 else None
            if progress:
                progress(dataset.describe())
            report = evaluation.compare(dataset, seeds=options["seeds"], k=options["k"], split=options["split"],
                                        folds=options["folds"], blend_folds=options["blend_folds"], progress=progress)
        except evaluation.DatasetError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self.stdout.write(evaluation.format_report(report))

    def _dataset(self, options: dict[str, Any]) -> evaluation.Dataset:
        if options["ratings"]:
            return evaluation.load_ratings(options["ratings"])
        if options["baskets"]:
            return evaluation.load_baskets(options["baskets"])
        from tenants.models import Tenant

        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}")
        dataset = evaluation.load_tenant(tenant)
        if dataset.interactions.nnz == 0:
            raise CommandError(f"Tenant {tenant.slug!r} has no orders or product events to learn from")
        return dataset
