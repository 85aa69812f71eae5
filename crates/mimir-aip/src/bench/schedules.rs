//! `bench schedules`: how late schedules fire, what the scheduler costs
//! between fires, and whether every slot fires exactly once through
//! restarts and failovers.
//!
//! Two loads, each on orchestrators it spawns (no workers: the fired tasks
//! only queue, so what is measured is the scheduler):
//!
//! - `--per-minute N` schedules `* * * * *` for `--minutes` minutes: fire
//!   lag (a task's submission time minus its slot) p50/p99/max, and the
//!   orchestrator's CPU between fires, beside the same orchestrator's CPU
//!   with no schedule at all, measured first.
//! - `--per-second N` schedules `* * * * * *` (catch-up `all`) for
//!   `--minutes` minutes, the orchestrator killed with `kill -9` and
//!   restarted halfway, or with `--replicas 2` (PostgreSQL, `--store-url`)
//!   the leader killed halfway and started again: every schedule's slots
//!   from its first to its last must each have exactly one task.

use super::Target;
use super::spawn::{Orchestrator, Telemetry};
use anyhow::{Context, bail};
use chrono::{DateTime, Timelike, Utc};
use clap::Args;
use mimir_client::Client;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// `bench schedules`.
#[derive(Debug, Args)]
pub struct SchedulesArgs {
    #[command(flatten)]
    target: Target,
    /// Schedules firing every minute.
    #[arg(long, default_value_t = 0)]
    per_minute: usize,
    /// Schedules firing every second.
    #[arg(long, default_value_t = 0)]
    per_second: usize,
    /// How long to let them fire.
    #[arg(long, default_value_t = 2)]
    minutes: u64,
    /// Orchestrator replicas sharing `--store-url` (per-second load only).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
}

/// Runs the scenario.
pub async fn run(args: SchedulesArgs) -> anyhow::Result<()> {
    if !args.target.spawn {
        bail!("bench schedules needs --spawn: it kills and restarts the orchestrators it measures");
    }
    if args.per_minute == 0 && args.per_second == 0 {
        bail!("give --per-minute N and/or --per-second N");
    }
    if args.replicas > 1 && args.target.store_url.is_none() {
        bail!("--replicas needs --store-url: replicas share a PostgreSQL store");
    }
    if args.per_minute > 0 {
        per_minute(&args).await?;
    }
    if args.per_second > 0 {
        per_second(&args).await?;
    }
    Ok(())
}

const CONFIG: &str = "orchestrator:\n  maxWorkers: 0\n  minWorkers: 0\n";

/// Creates `n` schedules of `cron` on `pipeline`, 16 requests at a time.
async fn create(
    client: &Client,
    pipeline: &str,
    n: usize,
    cron: &str,
    prefix: &str,
) -> anyhow::Result<()> {
    let mut running = tokio::task::JoinSet::new();
    for i in 0..n {
        if running.len() >= 16
            && let Some(done) = running.join_next().await
        {
            done??;
        }
        let client = client.clone();
        let body = json!({"name": format!("{prefix}-{i}"), "pipeline_id": pipeline, "cron": cron, "catchup": "all"});
        running.spawn(async move {
            client
                .call::<Value>(Method::POST, "/api/schedules", Some(&body))
                .await
                .map(|_| ())
                .context("cannot create a schedule")
        });
    }
    while let Some(done) = running.join_next().await {
        done??;
    }
    Ok(())
}

/// Every fired task's (schedule, slot, submitted_at), paged through the API.
async fn fired(client: &Client) -> anyhow::Result<Vec<(String, DateTime<Utc>, DateTime<Utc>)>> {
    let mut fires = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/worktasks?limit=1000&cursor={c}"),
            None => "/api/worktasks?limit=1000".to_string(),
        };
        let page: Value = client.call(Method::GET, &path, None).await?;
        for task in page["worktasks"].as_array().into_iter().flatten() {
            let spec = &task["task_spec"];
            let (Some(schedule), Some(slot), Some(submitted)) = (
                spec["schedule_id"].as_str(),
                spec["parameters"]["scheduled_at"].as_str(),
                task["submitted_at"].as_str(),
            ) else {
                continue;
            };
            fires.push((schedule.to_string(), slot.parse()?, submitted.parse()?));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(fires),
        }
    }
}

/// Sleeps until `second` seconds past the next minute.
async fn until_second_of_next_minute(second: u32) {
    let now = Utc::now();
    let wait = 60 - now.second() + second;
    let wait = Duration::from_secs(u64::from(wait))
        .saturating_sub(Duration::from_nanos(u64::from(now.nanosecond())));
    tokio::time::sleep(wait).await;
}

/// CPU share of one core the orchestrator used over `window`, in percent.
async fn cpu_share(orchestrator: &Orchestrator, window: Duration) -> anyhow::Result<f64> {
    let before = orchestrator.cpu_seconds().context("no CPU figure")?;
    tokio::time::sleep(window).await;
    let after = orchestrator.cpu_seconds().context("no CPU figure")?;
    Ok((after - before) / window.as_secs_f64() * 100.0)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn per_minute(args: &SchedulesArgs) -> anyhow::Result<()> {
    let orchestrator =
        Orchestrator::start_with(&args.target, CONFIG, Telemetry::Quiet, false).await?;
    let client = Client::new(&orchestrator.url);
    let pipeline = super::noop_pipeline(&client).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_empty = cpu_share(&orchestrator, Duration::from_secs(20)).await?;
    let started = std::time::Instant::now();
    create(&client, &pipeline, args.per_minute, "* * * * *", "minute").await?;
    println!(
        "created {} schedules (* * * * *) in {:.1}s",
        args.per_minute,
        started.elapsed().as_secs_f64()
    );
    let mut idle = Vec::new();
    for _ in 0..args.minutes {
        // Between fires: from 15 s to 45 s past the minute.
        until_second_of_next_minute(15).await;
        idle.push(cpu_share(&orchestrator, Duration::from_secs(30)).await?);
    }
    // The last minute's fires have landed.
    until_second_of_next_minute(10).await;
    let fires = fired(&client).await?;
    let mut lags: Vec<f64> = fires
        .iter()
        .map(|(_, slot, submitted)| {
            (*submitted - *slot).num_microseconds().unwrap_or(0) as f64 / 1e6
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let slots: std::collections::BTreeSet<_> = fires.iter().map(|(_, slot, _)| *slot).collect();
    println!(
        "{} fires over {} minute slots: lag p50 {:.3}s p99 {:.3}s max {:.3}s",
        fires.len(),
        slots.len(),
        quantile(&lags, 0.5),
        quantile(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN),
    );
    let mean_idle = idle.iter().sum::<f64>() / idle.len().max(1) as f64;
    println!(
        "orchestrator CPU between fires (15 s to 45 s past each minute): {:.2}% of a core with {} schedules (each minute: {}), {:.2}% with none",
        mean_idle,
        args.per_minute,
        idle.iter()
            .map(|c| format!("{c:.2}%"))
            .collect::<Vec<_>>()
            .join(", "),
        idle_empty
    );
    Ok(())
}

async fn per_second(args: &SchedulesArgs) -> anyhow::Result<()> {
    let mut target = args.target.clone();
    let mut replicas = Vec::new();
    let mut own_schema = None;
    if args.replicas > 1 {
        let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
        target.store_schema = Some(schema.clone());
        own_schema = Some(schema);
    }
    for _ in 0..args.replicas {
        replicas.push(Orchestrator::start_with(&target, CONFIG, Telemetry::Quiet, false).await?);
    }
    let result = per_second_on(args, &mut replicas).await;
    drop(replicas);
    if let (Some(schema), Some(url)) = (own_schema, &args.target.store_url) {
        super::spawn::drop_schema(url, &schema);
    }
    result
}

async fn per_second_on(args: &SchedulesArgs, replicas: &mut [Orchestrator]) -> anyhow::Result<()> {
    let client = Client::new(&replicas[replicas.len() - 1].url);
    let pipeline = super::noop_pipeline(&client).await?;
    create(&client, &pipeline, args.per_second, "* * * * * *", "second").await?;
    let run = Duration::from_secs(args.minutes * 60);
    tokio::time::sleep(run / 2).await;
    // The first replica started leads (or the only one): kill it.
    let killed = std::time::Instant::now();
    replicas[0].kill9();
    if replicas.len() > 1 {
        println!(
            "killed the leader (kill -9) after {:.0}s",
            (run / 2).as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        replicas[0].restart().await?;
    } else {
        replicas[0].restart().await?;
        println!(
            "killed (kill -9) and restarted the orchestrator after {:.0}s; ready again in {:.2}s",
            (run / 2).as_secs_f64(),
            killed.elapsed().as_secs_f64()
        );
    }
    tokio::time::sleep(run / 2).await;
    // Stop firing, then count.
    let page: Value = client
        .call(Method::GET, "/api/schedules?limit=1000", None)
        .await?;
    for schedule in page["schedules"].as_array().into_iter().flatten() {
        let id = schedule["id"].as_str().unwrap_or_default();
        let _: Value = client
            .call(Method::POST, &format!("/api/schedules/{id}/pause"), None)
            .await?;
    }
    let fires = fired(&client).await?;
    let mut by_schedule: HashMap<String, BTreeMap<DateTime<Utc>, usize>> = HashMap::new();
    for (schedule, slot, _) in &fires {
        *by_schedule
            .entry(schedule.clone())
            .or_default()
            .entry(*slot)
            .or_default() += 1;
    }
    let mut missed = 0;
    let mut doubled = 0;
    let mut slots = 0;
    for per_slot in by_schedule.values() {
        let (Some(first), Some(last)) = (per_slot.keys().next(), per_slot.keys().last()) else {
            continue;
        };
        let expected = (*last - *first).num_seconds() as usize + 1;
        missed += expected - per_slot.len();
        doubled += per_slot.values().filter(|n| **n > 1).count();
        slots += expected;
    }
    println!(
        "{} schedules every second for {} min over {} replica(s): {} fires, {} slots, {} missed, {} fired twice",
        by_schedule.len(),
        args.minutes,
        replicas.len(),
        fires.len(),
        slots,
        missed,
        doubled
    );
    if missed > 0 || doubled > 0 || by_schedule.len() != args.per_second {
        bail!("not every slot fired exactly once");
    }
    Ok(())
}
