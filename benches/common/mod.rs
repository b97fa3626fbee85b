//! Shared helpers of the cargo bench targets (`harness = false`, plain `std::time::Instant`).
//!
//! The machine these run on is small and shared, so every bench interleaves the thing it
//! measures with a baseline measured in the same run, repeats that in rounds and reports
//! medians over the rounds plus the ratio of the medians. Results are printed and appended
//! as Markdown to `$GST_FACENET_BENCH_RESULTS` (default `target/bench/results.md`), which
//! `scripts/bench.sh` collects.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// GStreamer initialized and the plugin registered statically (no GST_PLUGIN_PATH needed).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initializes");
        gstfacenet::plugin_register_static().expect("facenet plugin registers");
        let lib = std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .or_else(|| gstfacenet::backend::DEFAULT_LIBRARY.map(PathBuf::from));
        match lib {
            Some(lib) if lib.exists() => {}
            other => panic!(
                "the ONNX Runtime library is missing ({other:?}): run `make bench` (or `make setup` and set ORT_DYLIB_PATH)"
            ),
        }
    });
}

fn dir_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(default))
}

/// A model from `models/out` (`make models`).
pub fn model(name: &str) -> PathBuf {
    let p = dir_from_env("GST_FACENET_MODELS_DIR", "models/out").join(name);
    assert!(
        p.exists(),
        "model {} is missing: run `make models` (or `make bench`)",
        p.display()
    );
    p
}

/// A fixture model from `models/fixtures/out` (`make fixtures`).
pub fn fixture(name: &str) -> PathBuf {
    let p = dir_from_env("GST_FACENET_FIXTURES_DIR", "models/fixtures/out").join(name);
    assert!(
        p.exists(),
        "fixture model {} is missing: run `make fixtures` (or `make bench`)",
        p.display()
    );
    p
}

/// Where bench-generated inputs live (`scripts/bench.sh` writes the batch-1 model there).
pub fn bench_dir() -> PathBuf {
    dir_from_env("GST_FACENET_BENCH_DIR", "target/bench")
}

/// Scales the number of rounds / iterations: `GST_FACENET_BENCH_SCALE` (default 1.0;
/// 0.2 for a quick smoke run).
pub fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("GST_FACENET_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * s).round() as usize).max(1)
}

pub fn rounds(n: usize) -> usize {
    scale(n).max(3)
}

pub fn median(v: &[f64]) -> f64 {
    assert!(!v.is_empty());
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Times `f`, in seconds.
pub fn time<F: FnOnce()>(f: F) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// A line of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`...).
pub fn proc_status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// Markdown output: printed and appended to the results file.
pub struct Report {
    text: String,
}

impl Report {
    pub fn new(title: &str) -> Self {
        let mut r = Report {
            text: String::new(),
        };
        r.line(&format!("\n## {title}\n"));
        r
    }

    pub fn line(&mut self, s: &str) {
        println!("{s}");
        self.text.push_str(s);
        self.text.push('\n');
    }

    pub fn finish(self) {
        let path = std::env::var_os("GST_FACENET_BENCH_RESULTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| bench_dir().join("results.md"));
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("results file opens");
        f.write_all(self.text.as_bytes()).expect("results written");
        eprintln!("(appended to {})", path.display());
    }
}

/// Buffers counted so far, when the last one passed, and the count a waiter waits for.
#[derive(Default)]
struct CountState {
    count: u64,
    last: Option<Instant>,
    target: u64,
}

/// Counts buffers reaching a pad and lets the caller wait for a count.
#[derive(Clone, Default)]
pub struct Counter {
    inner: Arc<(Mutex<CountState>, Condvar)>,
}

impl Counter {
    /// A counter fed by a probe on `pad`.
    pub fn on_pad(pad: &gst::Pad) -> Self {
        let c = Counter::default();
        let c2 = c.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let (lock, cv) = &*c2.inner;
            let mut g = lock.lock().unwrap();
            g.count += 1;
            g.last = Some(Instant::now());
            // Only the buffer a waiter waits for wakes it: a wake-up per frame would put
            // the waiting thread on a core between every two frames, time charged to the
            // pipeline under test.
            if g.count == g.target {
                cv.notify_all();
            }
            gst::PadProbeReturn::Ok
        });
        c
    }

    pub fn count(&self) -> u64 {
        self.inner.0.lock().unwrap().count
    }

    /// Waits until `target` buffers have passed; returns the time the last one passed.
    pub fn wait_for(&self, target: u64, timeout: Duration) -> Instant {
        let (lock, cv) = &*self.inner;
        let deadline = Instant::now() + timeout;
        let mut g = lock.lock().unwrap();
        g.target = target;
        while g.count < target {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for buffer {target} (got {})",
                g.count
            );
            g = cv.wait_timeout(g, left).unwrap().0;
        }
        g.last.unwrap()
    }
}

/// `appsrc name=src ! <middle> ! fakesink name=sink` in PLAYING, for pushing prepared
/// buffers and timing them through.
pub struct AppPipeline {
    pub pipeline: gst::Pipeline,
    pub src: gst_app::AppSrc,
    pub sink_counter: Counter,
    pub element: Option<gst::Element>,
    pushed: u64,
}

impl AppPipeline {
    /// `caps`: the appsrc caps; `middle`: gst-launch syntax between appsrc and fakesink
    /// (the element under test should be named `dut`).
    pub fn new(caps: &gst::Caps, middle: &str) -> Self {
        init();
        let desc = format!(
            "appsrc name=src format=time ! {middle} ! fakesink name=sink sync=false async=false"
        );
        let pipeline = gst::parse::launch(&desc)
            .unwrap_or_else(|e| panic!("pipeline '{desc}': {e}"))
            .downcast::<gst::Pipeline>()
            .unwrap();
        let src = pipeline
            .by_name("src")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        src.set_caps(Some(caps));
        src.set_max_bytes(0); // unbounded: pushing never blocks, the streaming thread works
        let sink = pipeline.by_name("sink").unwrap();
        let sink_counter = Counter::on_pad(&sink.static_pad("sink").unwrap());
        let element = pipeline.by_name("dut");
        pipeline
            .set_state(gst::State::Playing)
            .unwrap_or_else(|e| panic!("pipeline '{desc}' does not start: {e}"));
        AppPipeline {
            pipeline,
            src,
            sink_counter,
            element,
            pushed: 0,
        }
    }

    /// Pushes the buffers and waits until they all reached the sink; returns the seconds
    /// from the first push to the last buffer reaching the sink.
    pub fn run(&mut self, buffers: Vec<gst::Buffer>) -> f64 {
        let n = buffers.len() as u64;
        let target = self.pushed + n;
        let t0 = Instant::now();
        for mut b in buffers {
            {
                let b = b.get_mut().unwrap();
                b.set_pts(gst::ClockTime::from_mseconds(self.pushed * 33));
                b.set_duration(gst::ClockTime::from_mseconds(33));
            }
            self.pushed += 1;
            self.src.push_buffer(b).expect("appsrc accepts the buffer");
        }
        let t1 = self.sink_counter.wait_for(target, Duration::from_secs(600));
        self.check_bus();
        t1.duration_since(t0).as_secs_f64()
    }

    pub fn check_bus(&self) {
        let bus = self.pipeline.bus().unwrap();
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    panic!("pipeline error: {} ({:?})", e.error(), e.debug())
                }
                gst::MessageView::Warning(w) => eprintln!("pipeline warning: {}", w.error()),
                _ => {}
            }
        }
    }
}

impl Drop for AppPipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A deterministic, textured 8-bit image (smooth gradients plus noise), `len` bytes.
pub fn texture(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (state >> 59) as usize; // 0..31
            ((i / 7 + i / 1931) % 224 + noise) as u8
        })
        .collect()
}

/// Machine description for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cores} logical CPUs, {cpu}; load average at start {load}")
}

/// Ratios `a[i] / b[i]` of rounds measured back to back, and their median (the drift of a
/// shared machine cancels better in such pairs than in a ratio of two medians).
/// The `q`-quantile (0..=1) of `v`, linear between order statistics.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    assert!(!v.is_empty() && (0.0..=1.0).contains(&q));
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = q * (s.len() - 1) as f64;
    let (i, f) = (at.floor() as usize, at.fract());
    if i + 1 < s.len() {
        s[i] + f * (s[i + 1] - s[i])
    } else {
        s[i]
    }
}

/// Median, first and third quartiles of the per-pair ratios `a[i] / b[i]`.
pub fn paired_quartiles(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    (median(&r), quantile(&r, 0.25), quantile(&r, 0.75))
}

/// A distribution-free 95 % confidence interval of the median of `v` (order statistics:
/// the `k`-th smallest and `k`-th largest values, `k` the largest count with
/// `P(Binomial(n, 1/2) < k) <= 2.5 %`), or `None` with fewer than 6 values (too few for
/// one). Says whether a run's median decides a goal or the noise could put it either side.
pub fn median_ci95(v: &[f64]) -> Option<(f64, f64)> {
    let n = v.len();
    if n < 6 {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    // ln C(n, i) built up term by term; P(X = i) = C(n, i) / 2^n.
    let (mut ln_choose, mut below, mut k) = (0.0f64, 0.0f64, 0usize);
    for i in 0..n {
        let p = (ln_choose - n as f64 * std::f64::consts::LN_2).exp();
        if below + p > 0.025 {
            break;
        }
        below += p;
        k = i + 1;
        ln_choose += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    // P(X <= k - 1) <= 2.5 %: the k-th smallest and the k-th largest.
    Some((s[k - 1], s[n - k]))
}

pub fn paired_ratios(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    (median(&r), min(&r), max(&r))
}

pub fn fmt_ms(s: f64) -> String {
    format!("{:.2} ms", s * 1e3)
}

pub fn fmt_us(s: f64) -> String {
    format!("{:.1} µs", s * 1e6)
}
