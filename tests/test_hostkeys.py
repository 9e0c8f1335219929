"""The SSH host key reader (cnibench/hostkeys.py): the parser on cloud-init's real console
output, the polling against botocore's own Stubber for the EC2 client."""

from __future__ import annotations

import base64
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from cnibench import hostkeys
from cnibench.hostkeys import HostKeyError, host_key_from_console, wait_for_host_key

DATA = Path(__file__).parent / "data" / "cloud-init"
CAPTURE = (DATA / "keys-to-console-22.4.2.txt").read_text()
# the ed25519 key of that capture, copied from the file by hand
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOmg6qQIR6nlp079GeH8152G8z3tvWNFD34rO4wRfeh8"
INSTANCE = "i-0123456789abcdef0"


def test_reads_the_ed25519_key_from_cloud_inits_console_output():
    assert host_key_from_console(CAPTURE) == ED25519
    # the other types of the same block, by request
    assert host_key_from_console(CAPTURE, "ecdsa-sha2-nistp256").startswith("ecdsa-sha2-nistp256 AAAAE2VjZHNh")
    assert host_key_from_console(CAPTURE, "ssh-rsa").startswith("ssh-rsa AAAAB3NzaC1yc2E")


def test_a_serial_console_framing_does_not_matter():
    # a serial console ends lines with CRLF and interleaves kernel/systemd lines (framing made
    # here around the real capture)
    framed = ("[   12.345678] cloud-init[812]: Cloud-init v. 22.4.2 running 'modules:final'\r\n"
              + CAPTURE.replace("\n", "\r\n").replace(
                  "ssh-ed25519", "[   13.000001] systemd[1]: Started getty@tty1.service.\r\nssh-ed25519", 1)
              + "[   14.1] cloud-init[812]: Cloud-init v. 22.4.2 finished\r\n")
    assert host_key_from_console(framed) == ED25519


@pytest.mark.parametrize("text", [
    "",
    "[    0.000000] Linux version 6.8.0-1012-aws\n",
    CAPTURE.split(hostkeys.END)[0],  # the block has begun, not ended: not yet
    CAPTURE.replace("-----BEGIN SSH HOST KEY KEYS-----\n", ""),  # a fingerprint block only
    CAPTURE.replace(ED25519.split()[1], "AAAA!!notbase64"),  # a damaged line
    # a well-formed base64 blob that holds another type
    CAPTURE.replace(ED25519.split()[1], base64.b64encode(b"\x00\x00\x00\x07ssh-rsa" + b"\x00" * 8).decode()),
])
def test_no_key_until_a_complete_well_formed_block(text):
    assert host_key_from_console(text) is None


def test_the_last_block_wins_and_two_keys_in_one_block_are_refused():
    older = CAPTURE.replace(ED25519.split()[1], base64.b64encode(
        b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + b"\x01" * 32).decode())
    assert host_key_from_console(older + CAPTURE) == ED25519
    doubled = CAPTURE.replace(ED25519 + " root@vm\n", ED25519 + " root@vm\n" + older.split("\n")[9] + "\n")
    assert doubled.count("ssh-ed25519") == 2
    with pytest.raises(HostKeyError, match="two different ssh-ed25519 host keys"):
        host_key_from_console(doubled)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _client():
    return boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")


def _output(text: str) -> dict:
    # as the API sends it, base64; botocore's after-call handler decodes it (the path boto3 takes)
    return {"InstanceId": INSTANCE, "Output": base64.b64encode(text.encode()).decode()}


def test_polls_the_console_until_the_key_is_printed():
    client, clock, lines = _client(), Clock(), []
    with Stubber(client) as stub:
        expected = {"InstanceId": INSTANCE, "Latest": True}
        stub.add_response("get_console_output", {"InstanceId": INSTANCE}, expected)  # nothing posted yet
        stub.add_response("get_console_output", _output("[    1.0] booting\n"), expected)
        stub.add_response("get_console_output", _output(CAPTURE), expected)
        key = wait_for_host_key(client, INSTANCE, timeout_s=60, interval_s=10, clock=clock, sleep=clock.sleep,
                                progress=lines.append)
        stub.assert_no_pending_responses()
    assert key == ED25519
    assert clock.now == 20
    assert lines[-1] == f"cnibench: {INSTANCE}: SSH host key ssh-ed25519 read from the console output"
    assert lines[0] == f"cnibench: {INSTANCE}: waiting for the SSH host key on the console (60 s left)"


def test_falls_back_to_the_posted_output_where_latest_is_unsupported():
    client = _client()
    with Stubber(client) as stub:
        stub.add_client_error("get_console_output", "UnsupportedOperation", "Latest is for Nitro instances",
                              expected_params={"InstanceId": INSTANCE, "Latest": True})
        stub.add_response("get_console_output", _output(CAPTURE), {"InstanceId": INSTANCE})
        assert wait_for_host_key(client, INSTANCE, progress=lambda _: None) == ED25519


def test_a_missing_permission_names_the_action():
    client = _client()
    with Stubber(client) as stub:
        stub.add_client_error("get_console_output", "UnauthorizedOperation", "You are not authorized")
        with pytest.raises(HostKeyError, match=r"may not call ec2:GetConsoleOutput \(UnauthorizedOperation\)"):
            wait_for_host_key(client, INSTANCE, progress=lambda _: None)


def test_gives_up_at_the_deadline_with_what_to_do():
    client, clock = _client(), Clock()
    with Stubber(client) as stub:
        for _ in range(4):
            stub.add_response("get_console_output", _output("[    1.0] still booting\n"))
        with pytest.raises(HostKeyError) as err:
            wait_for_host_key(client, INSTANCE, timeout_s=30, interval_s=10, clock=clock, sleep=clock.sleep,
                              progress=lambda _: None)
    text = str(err.value)
    assert f"{INSTANCE}: no ssh-ed25519 SSH host key in the console output after 30 s (4 reads)" in text
    assert "keys_to_console" in text and "cnibench:amiId" in text and hostkeys.ENV_TIMEOUT in text
    assert clock.now == 30


def test_main_requires_its_environment(capsys):
    assert hostkeys.main({}) == 2
    assert "CNIBENCH_INSTANCE_ID and CNIBENCH_REGION are required" in capsys.readouterr().err
    assert hostkeys.main({hostkeys.ENV_INSTANCE: INSTANCE, hostkeys.ENV_REGION: "us-east-1",
                          hostkeys.ENV_TIMEOUT: "soon"}) == 2
    assert "CNIBENCH_HOST_KEY_TIMEOUT='soon' is not a number of seconds" in capsys.readouterr().err
