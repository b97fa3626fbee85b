//! RGB images for the tests: decoding photos with GStreamer, cropping, scaling, pasting.
#![allow(dead_code)]

use gst::prelude::*;
use gst_video::prelude::*;

/// An RGB image, tightly packed.
#[derive(Clone)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Image {
    pub fn caps(&self) -> String {
        format!(
            "video/x-raw,format=RGB,width={},height={},framerate=0/1",
            self.width, self.height
        )
    }

    /// The frame as a buffer with GStreamer's default RGB stride (rows padded to 4 bytes).
    pub fn buffer(&self) -> gst::Buffer {
        let info = gst_video::VideoInfo::builder(
            gst_video::VideoFormat::Rgb,
            self.width as u32,
            self.height as u32,
        )
        .build()
        .unwrap();
        let stride = info.stride()[0] as usize;
        let mut data = vec![0u8; info.size()];
        for y in 0..self.height {
            data[y * stride..y * stride + 3 * self.width]
                .copy_from_slice(&self.rgb[y * 3 * self.width..(y + 1) * 3 * self.width]);
        }
        gst::Buffer::from_mut_slice(data)
    }

    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Image {
        let mut rgb = Vec::with_capacity(w * h * 3);
        for row in y..y + h {
            rgb.extend_from_slice(
                &self.rgb[(row * self.width + x) * 3..(row * self.width + x + w) * 3],
            );
        }
        Image {
            width: w,
            height: h,
            rgb,
        }
    }

    /// Bilinear rescale (pixel centres at i + 0.5), good enough to place a face at
    /// another size.
    pub fn scaled(&self, factor: f64) -> Image {
        let (w, h) = (
            (self.width as f64 * factor).round() as usize,
            (self.height as f64 * factor).round() as usize,
        );
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let sx = ((x as f64 + 0.5) / factor - 0.5).clamp(0.0, (self.width - 1) as f64);
                let sy = ((y as f64 + 0.5) / factor - 0.5).clamp(0.0, (self.height - 1) as f64);
                let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
                let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
                for c in 0..3 {
                    let p =
                        |xx: usize, yy: usize| f64::from(self.rgb[(yy * self.width + xx) * 3 + c]);
                    let v = (p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx) * (1.0 - fy)
                        + (p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx) * fy;
                    rgb[(y * w + x) * 3 + c] = v.round() as u8;
                }
            }
        }
        Image {
            width: w,
            height: h,
            rgb,
        }
    }

    pub fn paste(&mut self, other: &Image, x: usize, y: usize) {
        for row in 0..other.height {
            let dst = ((y + row) * self.width + x) * 3;
            self.rgb[dst..dst + other.width * 3]
                .copy_from_slice(&other.rgb[row * other.width * 3..(row + 1) * other.width * 3]);
        }
    }
}

pub fn decode(path: &std::path::Path) -> Image {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.pull_sample().expect("decoded photo");
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer().unwrap(), &info)
        .unwrap();
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).unwrap();
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        rgb.extend_from_slice(&data[y * stride..y * stride + 3 * w]);
    }
    pipeline.set_state(gst::State::Null).unwrap();
    Image {
        width: w,
        height: h,
        rgb,
    }
}

impl Image {
    /// Mirrored left to right.
    pub fn mirrored(&self) -> Image {
        let mut rgb = Vec::with_capacity(self.rgb.len());
        for y in 0..self.height {
            for x in (0..self.width).rev() {
                let i = (y * self.width + x) * 3;
                rgb.extend_from_slice(&self.rgb[i..i + 3]);
            }
        }
        Image {
            width: self.width,
            height: self.height,
            rgb,
        }
    }

    /// Every value scaled by `factor`, clipped.
    pub fn brighter(&self, factor: f32) -> Image {
        Image {
            width: self.width,
            height: self.height,
            rgb: self
                .rgb
                .iter()
                .map(|v| (f32::from(*v) * factor).round().min(255.0) as u8)
                .collect(),
        }
    }
}

impl Image {
    /// Through GStreamer's JPEG encoder at `quality` and back.
    pub fn jpeg_roundtrip(&self, quality: i32) -> Image {
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src caps=\"{}\" ! videoconvert ! jpegenc quality={quality} ! jpegdec ! videoconvert ! \
             video/x-raw,format=RGB ! appsink name=sink",
            self.caps()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline
            .by_name("src")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        src.push_buffer(self.buffer()).unwrap();
        src.end_of_stream().unwrap();
        let sample = sink.pull_sample().expect("a decoded frame");
        let out = from_sample(&sample);
        pipeline.set_state(gst::State::Null).unwrap();
        out
    }
}

fn from_sample(sample: &gst::Sample) -> Image {
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer().unwrap(), &info)
        .unwrap();
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).unwrap();
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        rgb.extend_from_slice(&data[y * stride..y * stride + 3 * w]);
    }
    Image {
        width: w,
        height: h,
        rgb,
    }
}
