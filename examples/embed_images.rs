//! Embeds image files with the `facenet` element and prints each embedding's first values
//! and the matrix of Euclidean distances between them, reading `FaceNetEmbeddingMeta`
//! through the crate's typed accessor.
//!
//! cargo run --release --example embed_images -- MODEL.onnx IMAGE... [-- facenet properties]
//!
//! Each image goes through `filesrc ! decodebin ! videoconvert ! facenet ! appsink`.

use gst::prelude::*;
use gstfacenet::EmbeddingMeta;

fn embed(model: &str, image: &str, extra: &str) -> Result<EmbeddingMeta, String> {
    let description = format!(
        "filesrc location=\"{image}\" ! decodebin ! videoconvert ! facenet model-location=\"{model}\" {extra} ! appsink name=sink"
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        let bus = pipeline.bus().unwrap();
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
            .map(|m| match m.view() {
                gst::MessageView::Error(e) => e.error().to_string(),
                _ => unreachable!(),
            })
            .unwrap_or_else(|| "the pipeline did not start".into())
    })?;
    let sample = sink.pull_sample();
    let result = match sample {
        Ok(sample) => sample
            .buffer()
            .and_then(EmbeddingMeta::from_buffer)
            .ok_or_else(|| "no embedding on the buffer".to_string()),
        Err(_) => {
            let bus = pipeline.bus().unwrap();
            Err(bus
                .timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])
                .map(|m| match m.view() {
                    gst::MessageView::Error(e) => format!("{} ({:?})", e.error(), e.debug()),
                    _ => unreachable!(),
                })
                .unwrap_or_else(|| "no frame".into()))
        }
    };
    pipeline
        .set_state(gst::State::Null)
        .map_err(|e| e.to_string())?;
    result
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (files, extra) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], args[i + 1..].join(" ")),
        None => (&args[..], String::new()),
    };
    if files.len() < 2 {
        eprintln!("usage: embed_images MODEL.onnx IMAGE... [-- facenet properties]");
        std::process::exit(2);
    }
    gst::init().expect("GStreamer initializes");
    // The plugin is linked in: no GST_PLUGIN_PATH needed.
    gstfacenet::plugin_register_static().expect("facenet plugin registers");
    let model = &files[0];
    let mut embedded = Vec::new();
    for image in &files[1..] {
        match embed(model, image, &extra) {
            Ok(meta) => {
                let head: Vec<String> = meta
                    .embedding
                    .iter()
                    .take(6)
                    .map(|v| format!("{v:+.4}"))
                    .collect();
                println!(
                    "{image}: {} values from {} [{} ...]",
                    meta.dimension(),
                    meta.model,
                    head.join(", ")
                );
                embedded.push((image.clone(), meta));
            }
            Err(e) => {
                eprintln!("{image}: {e}");
                std::process::exit(1);
            }
        }
    }
    let name = |p: &str| {
        std::path::Path::new(p)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    println!("\nEuclidean distances:");
    print!("{:>14}", "");
    for (image, _) in &embedded {
        print!(" {:>10.10}", name(image));
    }
    println!();
    for (a, ma) in &embedded {
        print!("{:>14.14}", name(a));
        for (_, mb) in &embedded {
            print!(" {:>10.4}", ma.squared_distance(mb).unwrap().sqrt());
        }
        println!();
    }
}
