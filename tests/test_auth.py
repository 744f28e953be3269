"""Authentication and roles over the real app: login failures and lockout, tokens that expired
or were never issued, cookie sessions and CSRF, API keys, what each role may do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from soc.accounts import AccountError, Accounts
from soc.embedded import ensure_first_admin
from tests.api_world import MACHINE_TOKEN, PASSWORD, A, world


async def test_wrong_passwords_lock_the_account_and_are_audited(tmp_path: Path) -> None:
    async with world(tmp_path, max_failed_logins=3, lockout_seconds=600) as w:
        async with w.client() as http:
            details = []
            for _ in range(3):
                wrong = await http.post(
                    "/api/v1/auth/token", data={"username": "a-analyst", "password": "nope"}
                )
                assert wrong.status_code == 401
                details.append(wrong.json()["detail"])
            assert details[:2] == ["invalid user name or password"] * 2
            assert "locked" in details[2]  # the failure that locks it says so
            # Locked: now even the right password is refused, and says why.
            locked = await http.post(
                "/api/v1/auth/token", data={"username": "a-analyst", "password": PASSWORD}
            )
            assert locked.status_code == 401 and "locked" in locked.json()["detail"]
            unknown = await http.post(
                "/api/v1/auth/token", data={"username": "nobody", "password": PASSWORD}
            )
            assert unknown.json()["detail"] == "invalid user name or password"
        # Another account is not affected; an administrator unlocks.
        admin = await w.as_user("root-admin")
        async with admin:
            trail = (await admin.get("/api/v1/audit", params={"action": "auth.login"})).json()
            failures = [e for e in trail["items"] if e["event"]["outcome"] == "failure"]
            assert len(failures) == 5
            assert {e["source"]["ip"] for e in failures} == {"198.51.100.7"}
            response = await admin.patch("/api/v1/users/a-analyst", json={"unlock": True})
            assert response.status_code == 200, response.text
        assert await w.token("a-analyst")


async def test_logins_from_one_address_are_rate_limited(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.app.state.login_limiter.per_minute = 4
        async with w.client() as http:
            codes = [
                (
                    await http.post(
                        "/api/v1/auth/login", json={"username": f"u{i}", "password": "x"}
                    )
                ).status_code
                for i in range(6)
            ]
        assert codes == [401, 401, 401, 401, 429, 429]


async def test_forged_and_expired_tokens_are_refused(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        token = await w.token("a-viewer")
        async with w.client(Authorization=f"Bearer {token}") as http:
            assert (await http.get("/api/v1/incidents")).status_code == 200
        for forged in (token[:-2] + "xx", "soc_abc_def", MACHINE_TOKEN + "x", ""):
            async with w.client(Authorization=f"Bearer {forged}") as http:
                assert (await http.get("/api/v1/incidents")).status_code == 401
        expired = w.accounts.create_session("a-viewer", "bearer", ttl_seconds=-1)
        async with w.client(Authorization=f"Bearer {expired.token}") as http:
            response = await http.get("/api/v1/incidents")
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
        # A cookie session's token is not a bearer token, nor the other way round.
        cookie_session = w.accounts.create_session("a-viewer", "cookie", ttl_seconds=60)
        async with w.client(Authorization=f"Bearer {cookie_session.token}") as http:
            assert (await http.get("/api/v1/incidents")).status_code == 401


async def test_logout_ends_the_token_and_disabling_ends_every_session(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        token = await w.token("a-viewer")
        async with w.client(Authorization=f"Bearer {token}") as http:
            assert (await http.post("/api/v1/auth/logout")).status_code == 204
            assert (await http.get("/api/v1/incidents")).status_code == 401
        token = await w.token("a-analyst")
        admin = await w.as_user("root-admin")
        async with admin:
            await admin.patch("/api/v1/users/a-analyst", json={"disabled": True})
        async with w.client(Authorization=f"Bearer {token}") as http:
            assert (await http.get("/api/v1/incidents")).status_code == 401
        async with w.client() as http:
            response = await http.post(
                "/api/v1/auth/token", data={"username": "a-analyst", "password": PASSWORD}
            )
            assert response.status_code == 401


async def test_cookie_sessions_need_the_csrf_token_to_change_anything(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        ident = w.incidents[A]
        async with w.client() as http:
            login = await http.post(
                "/api/v1/auth/login", json={"username": "a-analyst", "password": PASSWORD}
            )
            assert login.status_code == 200
            csrf = login.json()["csrf_token"]
            cookie = login.headers.get_list("set-cookie")
            assert any(c.startswith("soc_session=") and "HttpOnly" in c for c in cookie)
            assert all("SameSite=strict" in c for c in cookie)
            assert http.cookies["soc_csrf"] == csrf
            # Reading needs only the cookie.
            current = await http.get(f"/api/v1/incidents/{ident}")
            assert current.status_code == 200
            version = current.json()["incident"]["version"]
            body = {"version": version, "status": "acknowledged"}
            # What a forged cross-site form sends: the cookie, no header.
            assert (await http.patch(f"/api/v1/incidents/{ident}", json=body)).status_code == 403
            # A wrong token (its last character changed: to "A" unless it already is one,
            # which a random token's is one time in 64).
            bad = {"X-CSRF-Token": csrf[:-1] + ("B" if csrf.endswith("A") else "A")}
            response = await http.patch(f"/api/v1/incidents/{ident}", json=body, headers=bad)
            assert response.status_code == 403
            after = await http.get(f"/api/v1/incidents/{ident}")
            assert after.json()["incident"]["status"] == "new"
            good = {"X-CSRF-Token": csrf}
            response = await http.patch(f"/api/v1/incidents/{ident}", json=body, headers=good)
            assert response.status_code == 200, response.text
            assert response.json()["incident"]["status"] == "acknowledged"
            assert (await http.post("/api/v1/auth/logout", headers=good)).status_code == 204
            assert (await http.get(f"/api/v1/incidents/{ident}")).status_code == 401


async def test_roles(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        ident = w.incidents[A]
        viewer = await w.as_user("a-viewer")
        analyst = await w.as_user("a-analyst")
        async with viewer, analyst:
            version = (await viewer.get(f"/api/v1/incidents/{ident}")).json()["incident"]["version"]
            body = {"version": version, "status": "acknowledged"}
            assert (await viewer.patch(f"/api/v1/incidents/{ident}", json=body)).status_code == 403
            comment = await viewer.post(f"/api/v1/incidents/{ident}/comments", json={"text": "x"})
            assert comment.status_code == 403
            assert (await analyst.patch(f"/api/v1/incidents/{ident}", json=body)).status_code == 200
            new_user = {"username": "x", "password": PASSWORD, "role": "viewer", "agencies": [A]}
            assert (await analyst.post("/api/v1/users", json=new_user)).status_code == 403
            assert (await analyst.get("/api/v1/audit")).status_code == 403


async def test_api_keys_are_shown_once_work_and_can_be_revoked(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        admin = await w.as_user("a-admin")
        async with admin:
            created = await admin.post(
                "/api/v1/apikeys", json={"name": "báo cáo", "role": "viewer", "agencies": [A]}
            )
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]
            listed = (await admin.get("/api/v1/apikeys")).json()
            assert all("secret" not in key for key in listed)
            # The database holds a digest, never the key.
            assert secret.encode() not in (tmp_path / "accounts.db").read_bytes()
            async with w.client(Authorization=f"Bearer {secret}") as machine:
                page = await machine.get("/api/v1/incidents")
                assert page.status_code == 200
                assert {i["organization"]["id"] for i in page.json()["items"]} == {A}
            key_id = created.json()["id"]
            assert (await admin.delete(f"/api/v1/apikeys/{key_id}")).status_code == 204
            async with w.client(Authorization=f"Bearer {secret}") as machine:
                assert (await machine.get("/api/v1/incidents")).status_code == 401


def test_passwords_are_argon2id_hashes_and_weak_ones_refused(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "accounts.db")
    accounts.add_user("lan", PASSWORD, "analyst", ["so-a"])
    stored = accounts._read("SELECT password_hash FROM users WHERE username = 'lan'")[0][0]
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    with pytest.raises(AccountError, match="at least 12"):
        accounts.add_user("minh", "short", "viewer")
    with pytest.raises(AccountError, match="user name"):
        accounts.set_password("lan", "lan-is-my-name-2026")
    assert accounts.user("minh") is None
    accounts.close()


def test_first_admin_from_the_environment_or_generated_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOC_ADMIN_PASSWORD", PASSWORD)
    accounts = Accounts(tmp_path / "a.db")
    ensure_first_admin(accounts)
    assert accounts.authenticate("admin", PASSWORD).role == "admin"
    ensure_first_admin(accounts)  # a second start changes nothing
    assert accounts.user_count() == 1
    accounts.close()
    monkeypatch.delenv("SOC_ADMIN_PASSWORD")
    other = Accounts(tmp_path / "b.db")
    ensure_first_admin(other)
    printed = capsys.readouterr().err
    generated = printed.split("password: ", 1)[1].split()[0]
    assert len(generated) >= 20
    assert other.authenticate("admin", generated).username == "admin"
    ensure_first_admin(other)
    assert "password" not in capsys.readouterr().err
    other.close()


def test_soc_users_command(tmp_path: Path) -> None:
    env = {**os.environ, "SOC_DATA_DIR": str(tmp_path)}
    soc = [sys.executable, "-m", "soc"]

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*soc, "users", *args], input=stdin, capture_output=True, text=True, env=env,
            timeout=60, check=False,
        )  # fmt: skip

    assert run("add", "lan", "--role", "viewer", "--agency", A, "--password-stdin",
               stdin=PASSWORD + "\n").returncode == 0  # fmt: skip
    refused = run("add", "minh", "--password-stdin", stdin="short\n")
    assert refused.returncode == 1 and "at least 12" in refused.stderr
    assert run("disable", "lan").returncode == 0
    listed = run("list").stdout
    assert "lan" in listed and "disabled" in listed and A in listed
    assert run("enable", "lan").returncode == 0
    assert run("passwd", "lan", "--password-stdin", stdin="một-mật-khẩu-mới-dài\n").returncode == 0
    accounts = Accounts(tmp_path / "accounts.db")
    assert accounts.authenticate("lan", "một-mật-khẩu-mới-dài").role == "viewer"
    accounts.close()
