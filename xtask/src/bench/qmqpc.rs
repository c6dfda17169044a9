//! qmqpc's benchmarks: instruction counts for the two workloads of qmail's
//! reference figures, with the message as a file and as a pipe, and peak
//! RSS for a huge and a tiny piped message.

use super::{Bench, Feed, Figure, Input, feed_repeated};
use std::path::Path;

const HEAD: &[u8] = b"Received: (qmail 4242 invoked by uid 1000); 21 Nov 2026 05:43:00 -0000\n\
Date: 21 Nov 2026 05:43:00 -0000\n\
Message-ID: <20261121054300.4242.bench@example.org>\n\
From: sender@example.org\n\
To: rcpt@example.net\n\
Subject: picoq bench\n\
\n";

/// A message of exactly `size` bytes: headers, then 64-byte text lines.
fn message(size: usize) -> Vec<u8> {
    let mut m = HEAD.to_vec();
    let mut i = 0u32;
    while m.len() < size {
        m.extend_from_slice(format!("{i:08} the quick brown fox jumps over the lazy dog, twice.\n").as_bytes());
        i += 1;
    }
    m.truncate(size.saturating_sub(1));
    m.push(b'\n');
    m
}

/// A qmail-queue envelope: sender, `n` recipients.
fn envelope(n: usize) -> Vec<u8> {
    let mut e = b"Fsender@example.org\0".to_vec();
    for i in 0..n {
        e.extend_from_slice(format!("Trcpt{i:04}@example.net\0").as_bytes());
    }
    e.push(0);
    e
}

pub fn bench(b: &mut Bench) {
    b.heading("qmqpc");
    let server = format!("127.0.0.1:{}\n", b.stub.port);
    let home = b.home("qmqpc", &[("qmqpservers", server)]);
    let msg_1k = b.input("msg-1k", &message(1024));
    let msg_1m = b.input("msg-1m", &message(1 << 20));
    let env_1 = b.input("env-1rcpt", &envelope(1));
    let env_1000 = b.input("env-1000rcpt", &envelope(1000));

    // (what, message, envelope, target Ir, qmail-qmqpc's Ir, file tag)
    let workloads: [(&str, &Path, &Path, u64, &str, &str); 2] = [
        ("1 KiB message, 1 recipient", &msg_1k, &env_1, 17_500, "21,844 Ir", "1k-1rcpt"),
        ("1 MiB message, 1000 recipients", &msg_1m, &env_1000, 500_000, "1,044,089 Ir", "1m-1000rcpt"),
    ];
    println!("callgrind: instructions executed by qmqpc alone (release build, stripped)");
    for &(what, msg, env, target, qmail, tag) in &workloads {
        for input in [Input::File(msg), Input::Pipe(msg)] {
            let label = format!("qmqpc Ir, {what}, message on fd 0 from a {}", input.kind());
            match b.callgrind("qmqpc", &home, input, env, &format!("qmqpc-{tag}-{}", input.kind())) {
                Ok((ir, cmd)) => b.figure(&Figure {
                    what: &label,
                    how: &format!("$ {cmd}"),
                    value: ir,
                    unit: "Ir",
                    target: Some(target),
                    qmail: Some(qmail),
                }),
                Err(e) => b.unmeasured(&label, &e),
            }
        }
    }
    println!();
    for &(what, msg, env, _, _, tag) in &workloads {
        b.top_functions(
            &format!("{what}, message from a file"),
            "qmqpc",
            &home,
            Input::File(msg),
            env,
            &format!("qmqpc-{tag}-symbols"),
        );
    }

    println!();
    println!("peak RSS of qmqpc itself (VmHWM), message on fd 0 from a pipe");
    let cases: [(&str, usize, &str); 2] = [
        ("64 MiB message", 64 << 20, "grows with the message: 1,024 KB at 1 MiB (/usr/bin/time)"),
        ("tiny message (200 bytes)", 200, "444 KB for 1 KiB (/usr/bin/time)"),
    ];
    let bin = b.rel_bin(&b.release.clone(), "qmqpc");
    let mut hwms = Vec::new();
    for &(what, size, qmail) in &cases {
        let label = format!("qmqpc VmHWM, {what}");
        let how = format!(
            "<{size}-byte message> | env -i PICOQ_HOME={} {} 1<{}\n\
             run by xtask itself (no shell), which writes the message into the pipe; the QMQP stub reads\n\
             VmHWM from /proc/<pid>/status once the whole packet is in: all work done but the reply",
            home.display(),
            bin,
            env_1.display()
        );
        match b.peak_rss("qmqpc", &home, &env_1, feeder(size)) {
            Ok(kib) => {
                hwms.push(kib);
                b.figure(&Figure {
                    what: &label,
                    how: &how,
                    value: kib,
                    unit: "KiB",
                    target: Some(128),
                    qmail: Some(qmail),
                });
            }
            Err(e) => b.unmeasured(&label, &e),
        }
    }
    if let [big, tiny] = hwms[..] {
        b.figure(&Figure {
            what: "qmqpc VmHWM, 64 MiB message minus tiny message",
            how: "the two figures above: memory must not grow with the message. The sample moment\n\
                  makes each figure vary by a page or two (both 48-56 KiB over repeated runs), so the\n\
                  target allows two pages; growth with a 64 MiB message would show as megabytes",
            value: big.saturating_sub(tiny),
            unit: "KiB",
            target: Some(8),
            qmail: Some("580 KB more at 1 MiB"),
        });
    }
    for &(what, size, qmail) in &cases {
        let label = format!("qmqpc max RSS by /usr/bin/time, {what}");
        match b.time_max_rss("qmqpc", &home, &env_1, feeder(size)) {
            None => {}
            Some(Ok(kib)) => b.figure(&Figure {
                what: &label,
                how: &format!(
                    "<{size}-byte message> | env -i PICOQ_HOME={} /usr/bin/time -f %M {} 1<{}\n\
                     ru_maxrss here counts more than qmqpc's own pages and varies by ~100 KB between runs (a\n\
                     static C program that does nothing reads 420-570 KB, 32 KiB VmHWM): compare with qmail only",
                    home.display(),
                    bin,
                    env_1.display()
                ),
                value: kib,
                unit: "KB",
                target: None,
                qmail: Some(qmail),
            }),
            Some(Err(e)) => b.unmeasured(&label, &e),
        }
    }
}

/// Writes a `size`-byte message into the child's stdin, then closes it.
fn feeder(size: usize) -> Feed {
    Box::new(move |w| {
        let mut block = Vec::with_capacity(1 << 16);
        while block.len() + 64 <= 1 << 16 {
            block.extend_from_slice(b"00000000 the quick brown fox jumps over the lazy dog, twice.\n");
        }
        feed_repeated(w, HEAD, &block, size);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs() {
        for n in [200, 1024, 1 << 20] {
            let m = message(n);
            assert_eq!(m.len(), n);
            assert!(m.ends_with(b"\n"));
        }
        let e = envelope(2);
        assert_eq!(e, b"Fsender@example.org\0Trcpt0000@example.net\0Trcpt0001@example.net\0\0");
    }
}
