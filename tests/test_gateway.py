"""The endpoint table: reloads on edit, rename and symlink swap; keeps the last good config."""
from __future__ import annotations

import logging
import os

from app.gateway import Gateway

ONE = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-1}
  - name: emb
    endpoint_type: llm/v1/embeddings
    model: {provider: echo, name: echo-e}
"""
TWO = ONE.replace("echo-1", "echo-2")


def bump(path) -> None:
    """Make sure the stat stamp changes even on filesystems with coarse mtimes."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_edit_in_place_reloads_and_keeps_unchanged_providers(write_config):
    path = write_config(ONE)
    gw = Gateway.from_file(str(path))
    emb_provider = gw.get("emb").provider
    chat_provider = gw.get("chat").provider
    path.write_text(TWO)
    bump(path)
    assert gw.check_for_changes()
    assert gw.get("chat").endpoint.model == "echo-2"
    assert gw.get("chat").provider is not chat_provider
    # Unchanged endpoint: same provider object, hence the same pooled session.
    assert gw.get("emb").provider is emb_provider


def test_atomic_rename_reloads(write_config, tmp_path):
    path = write_config(ONE)
    gw = Gateway.from_file(str(path))
    tmp = tmp_path / "new.yaml"
    tmp.write_text(TWO)
    os.replace(tmp, path)
    assert gw.check_for_changes()
    assert gw.get("chat").endpoint.model == "echo-2"


def test_symlink_swap_reloads(tmp_path):
    (tmp_path / "v1.yaml").write_text(ONE)
    (tmp_path / "v2.yaml").write_text(TWO)
    link = tmp_path / "current.yaml"
    link.symlink_to(tmp_path / "v1.yaml")
    gw = Gateway.from_file(str(link))
    staged = tmp_path / "staged"
    staged.symlink_to(tmp_path / "v2.yaml")
    os.replace(staged, link)
    assert gw.check_for_changes()
    assert gw.get("chat").endpoint.model == "echo-2"


def test_invalid_edit_keeps_last_good_config_and_logs_why(write_config, caplog):
    path = write_config(ONE)
    gw = Gateway.from_file(str(path))
    path.write_text(ONE.replace("provider: echo, name: echo-1", "provider: nope, name: echo-1"))
    bump(path)
    with caplog.at_level(logging.ERROR, logger="ai_gateway"):
        assert not gw.check_for_changes()
        assert not gw.check_for_changes()  # logged once, not on every poll
    assert gw.get("chat").endpoint.model == "echo-1"
    rejected = [r for r in caplog.records if "Config reload rejected" in r.getMessage()]
    assert len(rejected) == 1 and "unknown provider 'nope'" in rejected[0].getMessage()
    # Fixing the file is picked up again.
    path.write_text(TWO)
    bump(path)
    assert gw.check_for_changes()
    assert gw.get("chat").endpoint.model == "echo-2"


def test_deleted_file_keeps_last_good_config(write_config, caplog):
    path = write_config(ONE)
    gw = Gateway.from_file(str(path))
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="ai_gateway"):
        assert not gw.check_for_changes()
    assert gw.get("chat") is not None
    assert any("is gone" in r.getMessage() for r in caplog.records)
    path.write_text(TWO)
    assert gw.check_for_changes()
    assert gw.get("chat").endpoint.model == "echo-2"


def test_removed_and_added_endpoints(write_config):
    path = write_config(ONE)
    gw = Gateway.from_file(str(path))
    path.write_text(ONE.replace("name: emb", "name: emb2"))
    bump(path)
    assert gw.check_for_changes()
    assert gw.get("emb") is None and gw.get("emb2") is not None


def test_touch_without_change_does_not_rebuild(write_config):
    path = write_config(ONE)
    gw = Gateway.from_file(str(path))
    table = gw._table
    bump(path)
    assert not gw.check_for_changes()
    assert gw._table is table


def test_watcher_thread_picks_up_edits(write_config):
    import time

    path = write_config(ONE)
    gw = Gateway.from_file(str(path))
    gw.watch(0.05)
    try:
        path.write_text(TWO)
        bump(path)
        deadline = time.monotonic() + 5
        while gw.get("chat").endpoint.model != "echo-2" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gw.get("chat").endpoint.model == "echo-2"
    finally:
        gw.stop()
