"""Config files: the teacher's options and another table (the loop's [student]) read by one parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqa_distill.errors import ConfigError
from vqa_distill.teacher.params import config_table, load_config_file


def test_a_named_table_and_the_teacher_table_come_from_one_file(tmp_path: Path) -> None:
    path = tmp_path / "loop.toml"
    path.write_text('[teacher]\nimages = "photos"\n\n[student]\nmodel-id-or-path = "tiny"\nmax_steps = 4\n')
    assert load_config_file(path) == {"images": "photos"}
    assert config_table(path, "student") == {"model_id_or_path": "tiny", "max_steps": 4}
    assert config_table(path, "judge") == {}


def test_a_table_that_is_no_table_or_a_broken_file_is_one_config_error(tmp_path: Path) -> None:
    flat = tmp_path / "flat.json"
    flat.write_text('{"student": "tiny"}')
    with pytest.raises(ConfigError, match="'student' must be a table"):
        config_table(flat, "student")
    broken = tmp_path / "broken.yaml"
    broken.write_text("student: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid"):
        config_table(broken, "student")
