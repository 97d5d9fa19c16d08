#!/usr/bin/env python3
"""Print the Grafana dashboard of k8s/monitoring as a list: each panel's title and queries
(for a review, or a change note, without a Grafana at hand).

    python3 scripts/panels.py [path/to/dashboard.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1] / "k8s" / "monitoring" / "volreg-dashboard.json"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    print(f"{dashboard['title']} ({len(dashboard['panels'])} panels)\n")
    for panel in sorted(dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        print(f"{panel['id']:>2}. {panel['title']}")
        for target in panel["targets"]:
            legend = target.get("legendFormat", "")
            shown = f"   [{legend}]" if legend else ""
            print(f"      {target['refId']}: {target['expr']}{shown}")


if __name__ == "__main__":
    main()
