"""Property-based fuzzing of the running service with schemathesis, from its own /openapi.json.

Every operation, every check schemathesis has (no 5xx, status codes, content types, headers
and bodies as documented, invalid input rejected, valid input accepted), 1,000+ cases.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import StartService

MIN_CASES = 1000


def test_schemathesis_finds_nothing(start_service: StartService, tmp_path: Path) -> None:
    service = start_service(env={"CHAT_RATE_LIMIT_RPS": "0"})
    schemathesis = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{service.base_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "600",
            "--seed",
            "20261124",
            "--workers",
            "2",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated, output[-2000:]
    assert int(generated.group(1)) >= MIN_CASES, output[-2000:]
    assert generated.group(1) == generated.group(2)
    print(f"schemathesis: {generated.group(1)} cases, all passed")
