"""`python -m tinyformer.exercises.isolated SLUG FILE RESULT.json`: check one learner's file
in this fresh process and write {"message": null or the failure} to RESULT.json.

The runner (`workspace.check_in_subprocess`) starts this, so that whatever the learner's code
does (loops forever, exits, prints) cannot take the runner down with it.
"""

import json
import sys

from .catalogue import find
from .checking import run_check


def main(slug, path, result_path):
    message = run_check(find(slug), path)
    with open(result_path, "w") as f:
        json.dump({"message": message}, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
