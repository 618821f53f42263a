//! `wahook-dev`: talk to the running local stack (scripts/dev.sh forwards its subcommands here).

use serde_json::json;
use wahook::domain::time::UnixTime;
use wahook_local::dev::{self, Args, DevEnv, Inbound};

const USAGE: &str = "usage: wahook-dev <command>

  inbound  --from +5215512345678 [--user-id MX.131…] [--name Ana]
           (--text \"Hola\" | --button \"Stop promotions\"
           | --image FILE | --document FILE | --audio FILE | --video FILE | --sticker FILE)
           [--caption \"…\"] [--referral]
                         a user writes to the business (the simulator posts a signed webhook;
                         a file goes to S3 through the media queue: see it with timeline)
  send     --to +5215512345678 (--template NAME --language es_MX --category utility
           | --text \"…\" [--fallback NAME --fallback-language es_MX --category utility]
           | --image FILE | --document FILE | --audio FILE | --video FILE | --sticker FILE
             [--caption \"…\"])
           [--key KEY] [--not-after 2026-11-23T12:00:00Z]
  send     --file request.json
                         put a send request on the sends queue (checked first)
  consent  +5215512345678|MX.131… CATEGORY opted_in|opted_out [--source web_form]
           [--evidence \"form 77\"] [--at 2026-12-01T10:00:00Z]
                         record a consent your systems collected (or its withdrawal)
  status   KEY           what became of a send request
  timeline +5215512345678 | MX.131…
                         a contact's window, opt-outs and messages
  dlq                    the dead-letter queue, with reasons
  templates              the template registry (status, category, quality, as of when)
  templates sync         read every template the simulator lists (GET /{waba}/message_templates)
                         into the registry, as the deployed sync does from Meta
  templates set NAME LANGUAGE STATUS CATEGORY
                         change a template in the simulator as Meta would (APPROVED, PAUSED,
                         DISABLED…; UTILITY, MARKETING…): its webhooks feed the registry
  events [--follow] [--json]
                         what the stack published to its event bus since the last look
                         (message.received, message.status_changed, send.outcome…; docs/events.md)
  report [--day 2026-12-06]
                         figures per template, language and category for a day (UTC; today by
                         default): sent, delivered, read, failed, replied, reply rate, billable, cost
  demo                   the walk-through of a plain scripts/dev.sh run
  provision QUEUE_NAME   create the tables, the sends queue, the media queue and bucket, the
                         event bus and its tap queue (scripts/dev.sh does this)";

#[tokio::main]
async fn main() {
    let mut args = Args::new(std::env::args().skip(1).collect());
    let command = args.positional().unwrap_or_default();
    if let Err(e) = run(&command, &mut args).await {
        eprintln!("wahook-dev {command}: {e}");
        std::process::exit(1);
    }
}

async fn run(command: &str, args: &mut Args) -> Result<(), String> {
    match command {
        "provision" => {
            let queue = args
                .positional()
                .ok_or("provision needs the sends queue name")?;
            args.done()?;
            let env = wahook::config::Env::process();
            let sdk = wahook::aws::sdk_config().await;
            let (queue_url, dlq_url) =
                dev::provision(&sdk, &wahook::config::table_names(&env), &queue).await?;
            println!("WAHOOK_SENDS_QUEUE_URL={queue_url}");
            println!("WAHOOK_SENDS_DLQ_URL={dlq_url}");
            let (media_queue_url, bucket) = dev::provision_media(&sdk, "wahook-local").await?;
            println!("WAHOOK_MEDIA_QUEUE_URL={media_queue_url}");
            println!("WAHOOK_MEDIA_BUCKET={bucket}");
            let (bus, tap_url) = dev::provision_events(&sdk, "wahook-local").await?;
            println!("WAHOOK_EVENT_BUS_NAME={bus}");
            println!("WAHOOK_EVENTS_TAP_URL={tap_url}");
            Ok(())
        }
        "inbound" => {
            let msg = Inbound {
                from: args.value("--from"),
                user_id: args.value("--user-id"),
                name: args.value("--name").unwrap_or_else(|| "Sim User".into()),
                text: args.value("--text"),
                button: args.value("--button"),
                referral: args.flag("--referral"),
                media: ["image", "video", "audio", "document", "sticker"]
                    .into_iter()
                    .find_map(|kind| {
                        args.value(&format!("--{kind}"))
                            .map(|path| (kind.to_owned(), path))
                    }),
                caption: args.value("--caption"),
            };
            args.done()?;
            if msg.from.is_none() && msg.user_id.is_none() {
                return Err("say who writes: --from +E.164 and/or --user-id BSUID".into());
            }
            let wamid = dev::inbound(&DevEnv::load()?, &msg).await?;
            println!("delivered to the webhook: {wamid}");
            Ok(())
        }
        "send" => {
            let request = match args.value("--file") {
                Some(path) => (
                    serde_json::from_str(
                        &std::fs::read_to_string(&path)
                            .map_err(|e| format!("read {path}: {e}"))?,
                    )
                    .map_err(|e| format!("{path} is not JSON: {e}"))?,
                    None,
                ),
                None => request_from_flags(args)?,
            };
            let (mut request, file) = request;
            args.done()?;
            let dev_env = DevEnv::load()?;
            // A file named by flags goes into the local media bucket first, as a producer puts it.
            if let Some((kind, path)) = file {
                request[kind]["s3"] = json!(dev::put_outbound_file(&dev_env, &path).await?);
            }
            let key = dev::send(&dev_env, &request).await?;
            println!("enqueued {key}; follow it with: scripts/dev.sh status {key}");
            Ok(())
        }
        "consent" => {
            let usage = "consent needs TO CATEGORY opted_in|opted_out";
            let to = args.positional().ok_or(usage)?;
            let category = args.positional().ok_or(usage)?;
            let consent = args.positional().ok_or(usage)?;
            let mut request = json!({
                "v": 1, "kind": "consent", "to": to, "category": category, "consent": consent,
                "at": args.value("--at").unwrap_or_else(|| UnixTime::now().to_rfc3339()),
                "source": args.value("--source").unwrap_or_else(|| "dev_sh".into()),
            });
            if let Some(evidence) = args.value("--evidence") {
                request["evidence"] = json!(evidence);
            }
            args.done()?;
            dev::consent(&DevEnv::load()?, &request).await?;
            println!("enqueued: {consent} to {category} for {to}; see it with: scripts/dev.sh timeline {to}");
            Ok(())
        }
        "status" => {
            let key = args.positional().ok_or("status needs an idempotency key")?;
            args.done()?;
            print!("{}", dev::send_status(&DevEnv::load()?, &key).await?);
            Ok(())
        }
        "timeline" => {
            let who = args
                .positional()
                .ok_or("timeline needs a phone (+E.164) or a BSUID")?;
            args.done()?;
            let (home, state, entries) = dev::contact_and_timeline(&DevEnv::load()?, &who).await?;
            print!(
                "{}",
                dev::format_timeline(&home, state.as_ref(), &entries, UnixTime::now())
            );
            Ok(())
        }
        "dlq" => {
            args.done()?;
            let letters = dev::dead_letters(&DevEnv::load()?).await?;
            if letters.is_empty() {
                println!("the DLQ is empty");
            }
            for (id, attrs, body) in letters {
                println!(
                    "{}  {}  {}\n  reason: {}\n  body:   {}",
                    attrs
                        .get("wahook-failed-at")
                        .map(String::as_str)
                        .unwrap_or("-"),
                    attrs
                        .get("wahook-error")
                        .map(String::as_str)
                        .unwrap_or("redriven after too many deliveries"),
                    id,
                    attrs
                        .get("wahook-reason")
                        .map(String::as_str)
                        .unwrap_or("(see the sender's send_retry log lines)"),
                    body
                );
            }
            Ok(())
        }
        "templates" => match args.positional().as_deref() {
            None => {
                args.done()?;
                print!("{}", dev::templates(&DevEnv::load()?).await?);
                Ok(())
            }
            Some("set") => {
                let mut next = |what: &str| {
                    args.positional()
                        .ok_or(format!("templates set needs {what}: NAME LANGUAGE STATUS CATEGORY"))
                };
                let (name, language, status, category) =
                    (next("NAME")?, next("LANGUAGE")?, next("STATUS")?, next("CATEGORY")?);
                args.done()?;
                dev::set_template(&DevEnv::load()?, &name, &language, &status, &category).await?;
                println!("{name} ({language}) is {} at the simulator; the registry has it: scripts/dev.sh templates", status.to_ascii_uppercase());
                Ok(())
            }
            Some("sync") => {
                args.done()?;
                print!("{}", dev::sync_templates(&DevEnv::load()?).await?);
                Ok(())
            }
            Some(other) => Err(format!("templates {other}: use `templates`, `templates sync` or `templates set NAME LANGUAGE STATUS CATEGORY`")),
        },
        "events" => {
            let follow = args.flag("--follow");
            let raw = args.flag("--json");
            args.done()?;
            let dev_env = DevEnv::load()?;
            loop {
                // The publisher polls the streams every half second: wait a little for what the
                // last command wrote, then print what the bus delivered.
                let events = dev::take_events(&dev_env, if follow { 10 } else { 2 }).await?;
                for e in &events {
                    if raw {
                        println!("{e}");
                    } else {
                        println!("{}", dev::format_event(e));
                    }
                }
                if !follow {
                    if events.is_empty() {
                        println!("no new events (each is shown once; --follow waits for more)");
                    }
                    return Ok(());
                }
            }
        }
        "report" => {
            let day = args
                .value("--day")
                .unwrap_or_else(|| wahook::domain::figures::day_of(UnixTime::now().secs()));
            args.done()?;
            // A day that reads back as itself: YYYY-MM-DD, and a date that exists.
            let exists = UnixTime::parse_rfc3339(&format!("{day}T00:00:00Z"))
                .is_some_and(|t| t.day() == day);
            if !exists {
                return Err(format!("--day {day:?}: give a date that exists, as YYYY-MM-DD (UTC)"));
            }
            print!("{}", dev::report(&DevEnv::load()?, &day).await?);
            Ok(())
        }
        "demo" => {
            args.done()?;
            dev::demo(&DevEnv::load()?).await
        }
        _ => Err(USAGE.into()),
    }
}

/// The request the flags describe, and the file to put in S3 first (its kind and path), if any.
type FlagRequest = (serde_json::Value, Option<(&'static str, String)>);

fn request_from_flags(args: &mut Args) -> Result<FlagRequest, String> {
    let to = args.value("--to").ok_or("send needs --to (or --file)")?;
    let key = args
        .value("--key")
        .unwrap_or_else(|| format!("dev-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    let mut request = json!({"v": 1, "idempotency_key": key, "to": to});
    if let Some(category) = args.value("--category") {
        request["category"] = json!(category);
    }
    if let Some(t) = args.value("--not-after") {
        request["not_after"] = json!(t);
    }
    let file = ["image", "video", "audio", "document", "sticker"]
        .into_iter()
        .find_map(|kind| args.value(&format!("--{kind}")).map(|path| (kind, path)));
    if let Some((kind, path)) = file {
        // The S3 URI is filled in once the file is in the local bucket (`send` above).
        request[kind] = json!({});
        if let Some(caption) = args.value("--caption") {
            request[kind]["caption"] = json!(caption);
        }
        if kind == "document" {
            let name = std::path::Path::new(&path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            request[kind]["filename"] = json!(name);
        }
        return Ok((request, Some((kind, path))));
    }
    match (args.value("--template"), args.value("--text")) {
        (Some(name), None) => {
            let language = args
                .value("--language")
                .ok_or("--template needs --language")?;
            request["template"] = json!({"name": name, "language": language});
        }
        (None, Some(body)) => {
            request["text"] = json!({"body": body});
            if let Some(name) = args.value("--fallback") {
                let language = args
                    .value("--fallback-language")
                    .ok_or("--fallback needs --fallback-language")?;
                request["fallback_template"] = json!({"name": name, "language": language});
            }
        }
        _ => {
            return Err(
                "send needs exactly one of --template, --text and a file (--image FILE…)".into(),
            )
        }
    }
    Ok((request, None))
}
