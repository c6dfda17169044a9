//! smtpd-front's benchmarks: instructions for one SMTP session and per
//! DATA byte, peak RSS for a small and a huge message, and smtp-source
//! throughput under tcpserver, all with a trivial static queue program
//! that xtask builds so that the queue's own cost is the same for every
//! run and every program compared. It is built with musl-gcc (Debian's
//! musl-tools) when present: a glibc-static one is 40 times larger and
//! takes 450-930 us to start instead of ~250 us, which halved the `-d`
//! throughput figure (measured: ~2,300 against ~4,400 msgs/s).

use super::{Bench, Figure, feed_repeated};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The queue program: reads the message (fd 0) and the envelope (fd 1) to
/// their end and accepts. With `QQ_HWM` set it first copies its parent's
/// VmHWM line into that file: smtpd-front has stored the whole message by
/// then and only waits for this program.
const QQ_SOURCE: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
  static char b[65536];
  const char *hwm = getenv("QQ_HWM");
  if (hwm) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)getppid());
    FILE *in = fopen(path, "r"), *out = fopen(hwm, "w");
    if (!in || !out) return 81;
    while (fgets(line, sizeof line, in))
      if (!strncmp(line, "VmHWM:", 6)) fputs(line, out);
    fclose(out);
  }
  while (read(0, b, sizeof b) > 0) {}
  while (read(1, b, sizeof b) > 0) {}
  return 0;
}
"#;

const HELO: &[u8] = b"HELO client.example\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\n";
const HEAD: &[u8] = b"Date: 21 Nov 2026 05:43:00 -0000\r\n\
Message-ID: <20261121054300.4242.bench@example.org>\r\n\
From: sender@example.org\r\n\
To: rcpt@example.net\r\n\
Subject: picoq bench\r\n\
\r\n";
const LINE: &[u8] = b"00000000 the quick brown fox jumps over the lazy dog, twice.\r\n";
const END: &[u8] = b".\r\nQUIT\r\n";

/// A session whose DATA is exactly `size` bytes (headers, then text
/// lines, CRLF throughout), ending with `.` and QUIT.
fn session(size: usize) -> Vec<u8> {
    let mut s = HELO.to_vec();
    let mut m = HEAD.to_vec();
    let mut i = 0u32;
    while m.len() < size {
        m.extend_from_slice(format!("{i:08} the quick brown fox jumps over the lazy dog, twice.\r\n").as_bytes());
        i += 1;
    }
    m.truncate(size - 2);
    m.extend_from_slice(b"\r\n");
    s.extend_from_slice(&m);
    s.extend_from_slice(END);
    s
}

pub fn bench(b: &mut Bench) {
    b.heading("smtpd-front");
    let home = b.home("smtpd", &[("me", "mx.example\n".into()), ("rcpthosts", "example.net\n".into())]);
    let qq = match queue_program(b) {
        Ok(p) => p,
        Err(e) => return b.unmeasured("smtpd-front", &format!("cannot build the trivial queue program: {e}")),
    };
    let s_1k = b.input("smtpd-1k", &session(1024));
    let s_1m = b.input("smtpd-1m", &session(1 << 20));

    println!("callgrind: instructions executed by smtpd-front alone (release build, stripped); the queue");
    println!("program is {} ({CC} -static -O2 of in/qq-trivial.c), not traced", qq.display());
    let mut irs = Vec::new();
    for (what, input, target, qmail, tag) in [
        ("one session from a file (HELO, MAIL, RCPT, DATA of 1 KiB, QUIT)", &s_1k, 88_000, "181,725 Ir", "1k"),
        ("one session from a file, DATA of 1 MiB", &s_1m, 0, "", "1m"),
    ] {
        let label = format!("smtpd-front Ir, {what}");
        match callgrind(b, &home, &qq, input, tag) {
            Ok((ir, cmd)) => {
                irs.push(ir);
                b.figure(&Figure {
                    what: &label,
                    how: &format!("$ {cmd}"),
                    value: ir,
                    unit: "Ir",
                    target: (target > 0).then_some(target),
                    qmail: (!qmail.is_empty()).then_some(qmail),
                });
            }
            Err(e) => b.unmeasured(&label, &e),
        }
    }
    if let [ir_1k, ir_1m] = irs[..] {
        let bytes = ((1u64 << 20) - 1024) as f64;
        b.figure(&Figure {
            what: "smtpd-front Ir per 1,000 DATA bytes (1 MiB session minus 1 KiB session)",
            how: "the two figures above: (Ir 1 MiB - Ir 1 KiB) * 1000 / (1,048,576 - 1,024)",
            value: (ir_1m.saturating_sub(ir_1k) as f64 * 1000.0 / bytes).round() as u64,
            unit: "Ir",
            target: Some(13_700),
            qmail: Some("~80% of qmail-smtpd's Ir is its per-byte DATA loop"),
        });
    }

    println!();
    println!("peak RSS of smtpd-front itself (VmHWM), session on fd 0 from a pipe");
    for (what, size, tag) in [("DATA of 1 KiB", 1024usize, "1k"), ("DATA of 100 MiB", 100 << 20, "100m")] {
        let label = format!("smtpd-front VmHWM, {what}");
        match peak_rss(b, &home, &qq, size, tag) {
            Ok((kib, how)) => b.figure(&Figure {
                what: &label,
                how: &how,
                value: kib,
                unit: "KiB",
                target: Some(128),
                qmail: Some("444 KB max RSS for 1 KiB (/usr/bin/time)"),
            }),
            Err(e) => b.unmeasured(&label, &e),
        }
    }

    println!();
    println!("throughput: smtp-source against tcpserver + smtpd-front on loopback (noisy: compare only");
    println!("figures taken in the same run; qmail-smtpd's are from ../shared/PEERS.md)");
    for (what, flag, qmail) in [
        ("one message per connection", "", "~950 msgs/s"),
        ("every message of a session on one connection (-d)", " -d", "~4,700 msgs/s"),
    ] {
        let label = format!("smtpd-front throughput, {what}");
        match throughput(b, &home, &qq, flag) {
            Ok((rate, how)) => b.figure(&Figure {
                what: &label,
                how: &how,
                value: rate,
                unit: "msgs/s",
                target: None,
                qmail: Some(qmail),
            }),
            Err(e) => b.unmeasured(&label, &e),
        }
    }
}

/// The compiler for the trivial queue program (see the module doc).
const CC: &str = "musl-gcc";

/// Builds `qq-trivial` in the work directory; its absolute path.
fn queue_program(b: &mut Bench) -> Result<PathBuf, String> {
    let src = b.input("qq-trivial.c", QQ_SOURCE.as_bytes());
    let bin = b.work.join("qq-trivial");
    b.sh(&format!("{CC} -static -O2 -o qq-trivial {}", src.display()))
        .map_err(|e| format!("{e} (install Debian's musl-tools: make bench does)"))?;
    Ok(bin)
}

/// `KEY=value` pairs every run gets: tcpserver's variables as a client
/// on loopback would set them, the home and the queue program.
fn env_vars(home: &Path, qq: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("PICOQ_HOME", home.display().to_string()),
        ("QMAILQUEUE", qq.display().to_string()),
        ("TCPREMOTEIP", "127.0.0.1".into()),
        ("TCPREMOTEHOST", "client.example".into()),
        ("TCPLOCALHOST", "mx.example".into()),
    ]
}

fn env_words(home: &Path, qq: &Path) -> String {
    let q = |s: &str| crate::sh_quote(s);
    env_vars(home, qq).iter().map(|(k, v)| format!("{k}={}", q(v))).collect::<Vec<_>>().join(" ")
}

/// Ir of smtpd-front for the session in `input`; checks that the message
/// was accepted.
fn callgrind(b: &mut Bench, home: &Path, qq: &Path, input: &Path, tag: &str) -> Result<(u64, String), String> {
    let bin = b.rel_bin(&b.release.clone(), "smtpd-front");
    // env -i: start-up and the environment lookups scan the whole
    // environment, so cargo's variables would add instructions.
    let cmd = format!(
        "env -i {} valgrind --tool=callgrind --callgrind-out-file=cg/smtpd-{tag}.out {} <{} >cg/smtpd-{tag}.replies",
        env_words(home, qq),
        crate::sh_quote(&bin),
        crate::sh_quote(&input.display().to_string()),
    );
    b.sh(&cmd)?;
    accepted(&b.work.join(format!("cg/smtpd-{tag}.replies")))?;
    let text = std::fs::read_to_string(b.work.join(format!("cg/smtpd-{tag}.out")))
        .map_err(|e| format!("cannot read cg/smtpd-{tag}.out: {e}"))?;
    let ir = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no summary:/totals: line in cg/smtpd-{tag}.out"))?;
    Ok((ir, cmd))
}

/// The replies must include `250 ok <time> qp <pid>`.
fn accepted(replies: &Path) -> Result<(), String> {
    let r = std::fs::read_to_string(replies).map_err(|e| format!("{}: {e}", replies.display()))?;
    if r.contains("\r\n250 ok ") && r.contains(" qp ") {
        Ok(())
    } else {
        Err(format!("smtpd-front did not accept the message; replies: {r:?}"))
    }
}

/// VmHWM (KiB) of smtpd-front for a session with `size` bytes of DATA,
/// written into its fd 0 pipe by xtask; read by the queue program.
fn peak_rss(b: &mut Bench, home: &Path, qq: &Path, size: usize, tag: &str) -> Result<(u64, String), String> {
    let bin = b.release.join("smtpd-front");
    let hwm = b.work.join(format!("cg/smtpd-hwm-{tag}"));
    let _ = std::fs::remove_file(&hwm);
    let mut child = Command::new(&bin)
        .env_clear()
        .envs(env_vars(home, qq))
        .env("QQ_HWM", &hwm)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut block = Vec::with_capacity(1 << 16);
        while block.len() + LINE.len() <= 1 << 16 {
            block.extend_from_slice(LINE);
        }
        // Whole lines, then one shorter line so that DATA is exactly
        // `size` bytes and ends in CRLF.
        let mut lines = (size - HEAD.len()) / LINE.len();
        let mut rest = size - HEAD.len() - lines * LINE.len();
        if rest == 1 {
            lines -= 1;
            rest += LINE.len();
        }
        let mut last = vec![b'x'; rest.saturating_sub(2)];
        if rest > 0 {
            last.extend_from_slice(b"\r\n");
        }
        if stdin.write_all(HELO).is_ok() {
            feed_repeated(&mut stdin, HEAD, &block, HEAD.len() + lines * LINE.len());
            let _ = stdin.write_all(&last).and_then(|()| stdin.write_all(END));
        }
    });
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = feeder.join();
    let replies = String::from_utf8_lossy(&out.stdout);
    if !replies.contains("\r\n250 ok ") {
        return Err(format!("smtpd-front did not accept the message; replies: {replies:?}"));
    }
    let line = std::fs::read_to_string(&hwm).map_err(|e| format!("the queue program wrote no VmHWM: {e}"))?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("cannot read VmHWM from {line:?}"))?;
    let how = format!(
        "<session with {size} bytes of DATA> | env -i {} QQ_HWM=cg/smtpd-hwm-{tag} {}\n\
         run by xtask itself (no shell), which writes the session into the pipe; the queue program\n\
         copies VmHWM from /proc/<its parent>/status: smtpd-front has stored the whole message then",
        env_words(home, qq),
        b.rel_bin(&b.release.clone(), "smtpd-front"),
    );
    Ok((kib, how))
}

/// Messages per second that smtp-source gets through tcpserver +
/// smtpd-front, with `-d` in `flag` or not.
fn throughput(b: &mut Bench, home: &Path, qq: &Path, flag: &str) -> Result<(u64, String), String> {
    for tool in ["tcpserver", "smtp-source"] {
        let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return Err(format!("{tool} is not installed (Debian: ucspi-tcp, postfix)"));
        }
    }
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let bin = b.rel_bin(&b.release.clone(), "smtpd-front");
    // -l: without it tcpserver looks its own name up in the DNS for every
    // connection, which then dominates.
    let server = format!("tcpserver -H -R -l picoq.test -c 100 127.0.0.1 {port} {bin}");
    let client = format!(
        "smtp-source -s 4 -m 2000 -l 2048 -f sender@example.org -t rcpt@example.net -M client.example{flag} 127.0.0.1:{port}"
    );
    let mut tcpserver = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec env -i {} {server} 2>/dev/null", env_words(home, qq)))
        .current_dir(&b.work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run tcpserver: {e}"))?;
    let result = (|| {
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t0.elapsed() > Duration::from_secs(5) {
                return Err("tcpserver did not start listening".to_string());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let start = Instant::now();
        let out = b.sh(&client)?;
        let secs = start.elapsed().as_secs_f64();
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.trim().is_empty() {
            return Err(format!("smtp-source reported: {}", err.trim_end()));
        }
        Ok((2000.0 / secs).round() as u64)
    })();
    let _ = tcpserver.kill();
    let _ = tcpserver.wait();
    let rate = result?;
    let how = format!(
        "$ env -i {} {server} &\n$ time {client}\n2,000 messages of 2,048 bytes in 4 parallel sessions; msgs/s = 2000 / elapsed seconds",
        env_words(home, qq)
    );
    Ok((rate, how))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_have_exact_data_sizes() {
        for n in [1024, 1 << 20] {
            let s = session(n);
            let data = &s[HELO.len()..s.len() - END.len()];
            assert_eq!(data.len(), n);
            assert!(data.ends_with(b"\r\n"));
            assert!(!data.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
        }
    }
}
