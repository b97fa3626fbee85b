//! facenet-enroll: builds a `faceidentify` gallery from a folder of photos, one folder per
//! person, with the very elements the pipeline runs (`facedetect ! facenet
//! inference-region=roi-list`), so gallery and pipeline embeddings cannot drift apart.
//!
//! ```text
//! facenet-enroll [--model M.onnx] [--detector D.onnx] [--landmarks L.onnx]
//!                [--facenet-props "k=v ..."] [--output people.json] PEOPLE_DIR
//! ```
//!
//! PEOPLE_DIR/alice/*.jpg, PEOPLE_DIR/bob/*.png, ...: every image gives one embedding
//! for its folder's person. An image with several faces contributes its largest; one in
//! which no face is found is taken whole as a face crop, with a note.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gst::prelude::*;
use gstfacenet::gallery::{GalleryFile, Person};
use gstfacenet::meta::{face_detection, ROI_EMBEDDING_PARAM};
use gstfacenet::EmbeddingMeta;

struct Options {
    model: String,
    detector: String,
    landmarks: String,
    facenet_props: String,
    output: PathBuf,
    people: PathBuf,
}

const USAGE: &str = "usage: facenet-enroll [--model M.onnx] [--detector D.onnx] [--landmarks L.onnx] [--facenet-props \"k=v ...\"] [--output people.json] PEOPLE_DIR
PEOPLE_DIR holds one folder per person (the folder name is the label) of JPEG or PNG photos.
Defaults: models/out/faceapi_resnet128.onnx, models/out/faceapi_ssd_mobilenetv1.onnx, models/out/faceapi_landmark68.onnx, people.json";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        model: "models/out/faceapi_resnet128.onnx".into(),
        detector: "models/out/faceapi_ssd_mobilenetv1.onnx".into(),
        landmarks: "models/out/faceapi_landmark68.onnx".into(),
        facenet_props: String::new(),
        output: PathBuf::from("people.json"),
        people: PathBuf::new(),
    };
    let mut args = std::env::args().skip(1);
    let mut people = None;
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--model" => o.model = value("--model")?,
            "--detector" => o.detector = value("--detector")?,
            "--landmarks" => o.landmarks = value("--landmarks")?,
            "--facenet-props" => o.facenet_props = value("--facenet-props")?,
            "--output" | "-o" => o.output = PathBuf::from(value("--output")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other if other.starts_with('-') => {
                return Err(format!("unknown option {other}\n{USAGE}"))
            }
            other => people = Some(PathBuf::from(other)),
        }
    }
    o.people = people.ok_or(USAGE)?;
    Ok(o)
}

/// Adds a whole-frame face region to buffers that reach `facenet` without one, so a photo
/// that is already a face crop still enrolls.
fn add_whole_frame_fallback(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::BUFFER, |pad, info| {
        let Some(caps) = pad.current_caps() else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(vinfo) = gst_video::VideoInfo::from_caps(&caps) else {
            return gst::PadProbeReturn::Ok;
        };
        if let Some(buffer) = info.buffer_mut() {
            let has_face = buffer
                .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
                .any(|r| r.roi_type() == face_detection::ROI_TYPE);
            if !has_face {
                let b = buffer.make_mut();
                let mut roi = gst_video::VideoRegionOfInterestMeta::add(
                    b,
                    face_detection::ROI_TYPE,
                    (0, 0, vinfo.width(), vinfo.height()),
                );
                roi.add_param(
                    gst::Structure::builder("facenet-enroll")
                        .field("whole-image", true)
                        .build(),
                );
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// The embedding of the largest face of `image`, and whether it was the whole image.
fn embed(o: &Options, image: &Path) -> Result<(EmbeddingMeta, bool, usize), String> {
    let description = format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! facedetect model-location=\"{}\" landmark-model-location=\"{}\" ! \
         facenet name=fn model-location=\"{}\" inference-region=roi-list {} ! appsink name=sink",
        image.display(),
        o.detector,
        o.landmarks,
        o.model,
        o.facenet_props
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?;
    let facenet = pipeline.by_name("fn").ok_or("no facenet")?;
    add_whole_frame_fallback(&facenet.static_pad("sink").ok_or("no sink pad")?);
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let bus_error = || {
        bus.pop_filtered(&[gst::MessageType::Error])
            .map(|m| match m.view() {
                gst::MessageView::Error(e) => e.error().to_string(),
                _ => unreachable!(),
            })
            .unwrap_or_else(|| "the pipeline produced no frame".into())
    };
    let started = pipeline.set_state(gst::State::Playing);
    let sample = match started {
        Ok(_) => sink.pull_sample().map_err(|_| bus_error()),
        Err(_) => Err(bus_error()),
    };
    let _ = pipeline.set_state(gst::State::Null);
    let sample = sample?;
    let buffer = sample.buffer().ok_or("no buffer")?;
    let faces: Vec<(u64, EmbeddingMeta, bool)> = buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter_map(|roi| {
            let e = EmbeddingMeta::from_structure(roi.param(ROI_EMBEDDING_PARAM)?).ok()?;
            let (_, _, w, h) = roi.rect();
            Some((
                u64::from(w) * u64::from(h),
                e,
                roi.param("facenet-enroll").is_some(),
            ))
        })
        .collect();
    let count = faces.len();
    let (_, embedding, whole) = faces
        .into_iter()
        .max_by_key(|(area, ..)| *area)
        .ok_or("no embedding came out of the pipeline")?;
    Ok((embedding, whole, count))
}

fn run(o: &Options) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    // Use the installed plugin if GStreamer finds one, else the one linked in.
    if gst::ElementFactory::find("facenet").is_none() {
        gstfacenet::plugin_register_static().map_err(|e| e.to_string())?;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&o.people)
        .map_err(|e| format!("cannot read {}: {e}", o.people.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(format!(
            "{} has no sub-folders: make one folder per person (the folder name is the label) holding their photos",
            o.people.display()
        ));
    }
    let mut gallery: Option<GalleryFile> = None;
    for dir in dirs {
        let label = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut images: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .map(|x| {
                        matches!(
                            x.to_string_lossy().to_lowercase().as_str(),
                            "jpg" | "jpeg" | "png"
                        )
                    })
                    .unwrap_or(false)
            })
            .collect();
        images.sort();
        let mut person = Person {
            label: label.clone(),
            embeddings: Vec::new(),
            sources: Vec::new(),
        };
        for image in images {
            let (embedding, whole, faces) =
                embed(o, &image).map_err(|e| format!("{}: {e}", image.display()))?;
            if whole {
                eprintln!(
                    "note: {}: no face found, the whole image was taken as the face",
                    image.display()
                );
            } else if faces > 1 {
                eprintln!(
                    "note: {}: {faces} faces, the largest was enrolled",
                    image.display()
                );
            }
            let g = gallery.get_or_insert_with(|| {
                GalleryFile::new(
                    &embedding.model,
                    embedding.dimension(),
                    embedding.l2_normalized,
                )
            });
            person.embeddings.push(embedding.embedding);
            person.sources.push(
                image
                    .strip_prefix(&o.people)
                    .unwrap_or(&image)
                    .display()
                    .to_string(),
            );
            let _ = g;
        }
        if person.embeddings.is_empty() {
            eprintln!("note: {} has no JPEG or PNG photos, skipped", dir.display());
            continue;
        }
        println!("{label}: {} embeddings", person.embeddings.len());
        gallery
            .as_mut()
            .expect("set with the first embedding")
            .people
            .push(person);
    }
    let gallery = gallery.ok_or("no photos were found")?;
    // Validate what we write with the reader faceidentify uses.
    gstfacenet::gallery::Gallery::from_file(gallery.clone())?;
    gstfacenet::gallery::write_atomically(&o.output, &(gallery.to_json() + "\n")).map_err(|e| {
        format!(
            "cannot write {}: {e} (an existing gallery there is left as it was)",
            o.output.display()
        )
    })?;
    println!(
        "wrote {} ({} people, model {})",
        o.output.display(),
        gallery.people.len(),
        gallery.model
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|o| run(&o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("facenet-enroll: {e}");
            ExitCode::FAILURE
        }
    }
}
