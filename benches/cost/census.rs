//! a3. Where an idle device's bytes go: the same idle fleets as a. (1k and 10k plain devices), run in this
//! process under a counting allocator, so the heap blocks one device adds are counted exactly (by
//! requested size and alignment), next to the sizes of the device's future and its parts as this build
//! lays them out (`fleetstorm::engine::footprint`). What the allocator census does not see is the
//! allocator's own overhead (glibc: 8 bytes per block, blocks rounded up to 16, aligned blocks carved
//! out of larger ones) and pages the kernel maps for it; the RSS lines of a. include those.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use clap::Parser;
use std::fmt::Write as _;

use super::*;

/// Blocks up to this size are counted by exact size; larger ones in one bucket.
const EXACT: usize = 4096;

/// The system allocator, counting live blocks by size.
pub(super) struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BLOCKS: AtomicI64 = AtomicI64::new(0);
/// Live blocks aligned to more than 16 bytes (glibc carves them out of larger blocks).
static LIVE_OVERALIGNED: AtomicI64 = AtomicI64::new(0);
static BY_SIZE: [AtomicI64; EXACT + 1] = [const { AtomicI64::new(0) }; EXACT + 1];

fn counted(layout: Layout, sign: i64) {
    LIVE_BYTES.fetch_add(sign * layout.size() as i64, Relaxed);
    LIVE_BLOCKS.fetch_add(sign, Relaxed);
    if layout.align() > 16 {
        LIVE_OVERALIGNED.fetch_add(sign, Relaxed);
    }
    BY_SIZE[layout.size().min(EXACT)].fetch_add(sign, Relaxed);
}

// SAFETY: every call goes to `System` unchanged; the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            counted(layout, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            counted(layout, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        counted(layout, -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            counted(layout, -1);
            // SAFETY: `realloc` succeeded with this size and the old alignment.
            counted(
                unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) },
                1,
            );
        }
        p
    }
}

/// The live-heap counters at one moment.
#[derive(Clone)]
struct Census {
    at_us: u64,
    bytes: i64,
    blocks: i64,
    overaligned: i64,
    by_size: Vec<i64>,
}

fn census() -> Census {
    Census {
        at_us: now_us(),
        bytes: LIVE_BYTES.load(Relaxed),
        blocks: LIVE_BLOCKS.load(Relaxed),
        overaligned: LIVE_OVERALIGNED.load(Relaxed),
        by_size: BY_SIZE.iter().map(|c| c.load(Relaxed)).collect(),
    }
}

/// The child's side (`FLEETSTORM_BENCH_CENSUS=<census file>`, arguments of `fleetstorm` after the
/// bench's own): run fleetstorm in this process, take a census every 100 ms, and write them to the file
/// once the run is over, one per line: `at_us bytes blocks overaligned size:count...` (nonzero counts,
/// as differences from the census just before the run).
pub(super) fn child(file: &str) {
    let args = std::env::args_os().skip(1);
    let cli = match fleetstorm::cli::Cli::try_parse_from(
        std::iter::once(std::ffi::OsString::from("fleetstorm")).chain(args),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("census child: arguments: {e}");
            std::process::exit(2);
        }
    };
    // Room for every sample up front, so the samples themselves do not show in them.
    let mut samples: Vec<Census> = Vec::with_capacity(1_000);
    let before = census();
    let run = std::thread::spawn(move || fleetstorm::app::main(cli).code());
    let mut next = Instant::now();
    while !run.is_finished() {
        if samples.len() < samples.capacity() {
            samples.push(census());
        }
        next += Duration::from_millis(100);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let code = run.join().unwrap_or(101);
    let mut text = String::new();
    for s in &samples {
        let _ = write!(
            text,
            "{} {} {} {}",
            s.at_us,
            s.bytes - before.bytes,
            s.blocks - before.blocks,
            s.overaligned - before.overaligned
        );
        for (size, (a, b)) in s.by_size.iter().zip(&before.by_size).enumerate() {
            if a != b {
                let _ = write!(text, " {size}:{}", a - b);
            }
        }
        text.push('\n');
    }
    fs::write(file, text).expect("census file");
    std::process::exit(i32::from(code));
}

fn parse_census(line: &str) -> Option<Census> {
    let mut words = line.split_whitespace();
    let mut next = || words.next()?.parse::<i64>().ok();
    let (at_us, bytes, blocks, overaligned) = (next()?, next()?, next()?, next()?);
    let mut by_size = vec![0; EXACT + 1];
    for w in line.split_whitespace().skip(4) {
        let (size, n) = w.split_once(':')?;
        *by_size.get_mut(size.parse::<usize>().ok()?)? = n.parse().ok()?;
    }
    Some(Census {
        at_us: u64::try_from(at_us).ok()?,
        bytes,
        blocks,
        overaligned,
        by_size,
    })
}

/// Run `devices` idle devices in a child copy of this bench, which runs fleetstorm in its own process
/// under the counting allocator, against a fresh mosquitto; the census at ramp end + 5 s (the moment a.
/// reads the RSS), as a difference from the census just before the run.
fn census_run(bench: &Bench, devices: u64) -> Result<Census, String> {
    let name = format!("census-{devices}");
    let dir = bench.work.join(&name);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let scenario_path = dir.join("scenario.yaml");
    let yaml = scenario_yaml(&name, devices, "1h", 0, "2000/s", 500, "20s");
    fs::write(&scenario_path, yaml).map_err(|e| format!("{e}"))?;
    let broker = Broker::start(bench, &name, Wire::Plain)?;
    let out = dir.join("report");
    let file = dir.join("census.txt");
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let status = Command::new(exe)
        .env("FLEETSTORM_BENCH_CENSUS", &file)
        .arg("run")
        .arg(&scenario_path)
        .args(["--broker", &broker.url(), "--no-progress", "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(fs::File::create(dir.join("stdout.txt")).map_err(|e| format!("{e}"))?)
        .stderr(fs::File::create(dir.join("stderr.txt")).map_err(|e| format!("{e}"))?)
        .status()
        .map_err(|e| format!("spawn the census child: {e}"))?;
    drop(broker);
    let report = report::load(&out.join(report::REPORT_JSON)).map_err(|e| {
        let err = fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
        format!("no report ({e}); the census child exited with {status}; stderr:\n{err}")
    })?;
    let at = phase(&report, "ramp")?.end_us + IDLE_SETTLE_US;
    let text = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    text.lines()
        .filter_map(parse_census)
        .min_by_key(|s| s.at_us.abs_diff(at))
        .ok_or_else(|| "no census samples".to_string())
}

/// The breakdown of one idle plain device: sizes of its future and parts, and the heap blocks one
/// device adds (marginal between 1k and 10k idle devices, in this process).
pub(super) fn idle_breakdown(
    bench: &Bench,
    rows: &mut Vec<(String, String)>,
) -> Result<(), String> {
    println!();
    println!(
        "== a3. where an idle device's bytes go (plain TCP; sizes as this build lays them out; heap blocks \
         counted in this process, marginal 1k vs 10k idle devices, at ramp end + 5 s) =="
    );
    for p in fleetstorm::engine::footprint::device_parts() {
        println!("  {:<58} {:>5} B", p.name, p.bytes);
    }
    let small = census_run(bench, 1_000)?;
    let large = census_run(bench, 10_000)?;
    let n = 9_000.0;
    let per = |a: i64, b: i64| (a - b) as f64 / n;
    println!("  heap blocks per device (requested size x blocks per device, >= 0.05 per device):");
    let mut listed = 0.0;
    for (size, (l, s)) in large.by_size.iter().zip(&small.by_size).enumerate() {
        let blocks = per(*l, *s);
        if blocks.abs() >= 0.05 {
            let label = if size == EXACT {
                format!(">= {EXACT} B")
            } else {
                format!("{size} B")
            };
            println!("    {label:>10} x {blocks:.2}");
            if size < EXACT {
                listed += blocks * size as f64;
            }
        }
    }
    let bytes = per(large.bytes, small.bytes);
    let blocks = per(large.blocks, small.blocks);
    println!(
        "  heap per device: {bytes:.0} B requested in {blocks:.2} blocks ({:.2} of them aligned to more \
         than 16 B; {listed:.0} B in the sizes listed)",
        per(large.overaligned, small.overaligned)
    );
    rows.push((
        "heap per idle device (requested, in-process census)".into(),
        format!("{bytes:.0} B in {blocks:.2} blocks"),
    ));
    Ok(())
}
