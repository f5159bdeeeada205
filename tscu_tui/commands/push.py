"""`tscu push`: upload a run to the Hugging Face Hub and print the URL.

The token comes from HF_TOKEN or the `hf auth login` cache; it is never a flag,
so it never lands in shell history, the config or the logs.
"""

from __future__ import annotations

import argparse


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder to upload")
    parser.add_argument("--hub-model-id", "--repo-id", dest="repo_id", required=True,
                        metavar="USER/NAME", help="Hub repo to upload to (created if needed; "
                                                  "--repo-id: the old spelling)")
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument("--private", dest="private", action="store_true", default=True,
                            help="create the repo as private (default)")
    visibility.add_argument("--public", dest="private", action="store_false",
                            help="create the repo as public")
    parser.add_argument("--revision", default="", metavar="BRANCH",
                        help="branch to upload to, created if missing (default: main)")
    parser.add_argument("--base-model", metavar="ORG/NAME",
                        help="full-precision base for the PEFT adapter (default: derived)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the files that would be uploaded; no network")


def run(args: argparse.Namespace) -> int:
    from tscu_tui.engine.hub.push import push_run, upload_plan, validate_repo_id
    from tscu_tui.engine.hub.run import open_run

    if args.dry_run:
        validate_repo_id(args.repo_id)
        run_dir = open_run(args.run_dir).path
        for item in upload_plan(run_dir):
            source = item.local or "(generated model card)"
            print(f"{item.path_in_repo:<40} {item.size_bytes:>10,} B  {source}")
        return 0
    url = push_run(args.run_dir, args.repo_id, private=args.private, revision=args.revision,
                   base_model=args.base_model, progress=lambda m: print(m, flush=True))
    print(url)
    return 0
