// Reference side of the face-api SSD MobileNet v1 + FaceLandmark68Net -> ONNX check.
//
// Runs face-api's own full pipeline  detectAllFaces(img, SsdMobilenetv1Options({minConfidence: 0.5}))
// .withFaceLandmarks()  on the pure-JS tfjs 'cpu' backend (weights loaded by face-api's own
// loadFromDisk from the package's model/ directory) and, while it runs, captures from inside it
// (the two nets' forwardInput are wrapped on the instances face-api uses):
//   SSD:       the exact normalized [512,512,3] tensor the network consumes
//              (toBatchTensor(512, false) / 127.5 - 1) and the raw pre-NMS boxes + scores that
//              SsdMobilenetv1.forwardInput returns (outputLayer: decoded, sigmoid)
//   landmarks: the exact normalized [112,112,3] tensor ((toBatchTensor(112, true) - mean) / 255),
//              the raw fc output (runNet) and face-api's post-processed relative positions.
// Then the same photos go through detectAllFaces on the tfjs 'wasm' backend for comparison.
// verify_detector.py feeds the captured tensors to the ONNX models.
//
// usage: node verify_detector.mjs [out_dir] [--png]   (default out_dir: ../out/faceapi_detector_verify)
//   --png: also write <photo>.png (half size) with face-api's boxes + landmarks drawn, to check by eye
//
// Output files in out_dir (float32 / uint8, little-endian):
//   cases.json          metadata for everything below
//   det_inputs.f32      [n, 512, 512, 3]  NHWC RGB, x/127.5 - 1
//   det_boxes.f32       [n, 5118, 4]      (ymin, xmin, ymax, xmax), relative to the padded square
//   det_scores.f32      [n, 5118]
//   det_boxes_wasm.f32 / det_scores_wasm.f32   same, photos only, tfjs wasm backend
//   img_<name>.rgb      the uint8 RGB image of each detector case ([h, w, 3]; shape in cases.json)
//   lm_inputs.f32       [m, 112, 112, 3]  NHWC RGB, (x - mean_rgb) / 255
//   lm_raw.f32          [m, 136]          FaceLandmark68Net.runNet output (x0, y0, x1, y1, ...)
//   lm_post.f32         [m, 136]          forwardInput output (positions relative to the crop)
//   crop_<name>.rgb     the uint8 RGB crop of each landmark case
// And, next to this script (committed): detector_expected.json, landmarks_expected.json.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const jpeg = require('jpeg-js');

const { tf } = faceapi;
const pkgDir = path.dirname(require.resolve('@vladmandic/face-api/package.json'));
const modelDir = path.join(pkgDir, 'model');
const args = process.argv.slice(2);
const writePng = args.includes('--png');
const outDir = path.resolve(args.filter((a) => !a.startsWith('--'))[0] || path.join(here, '..', 'out', 'faceapi_detector_verify'));

const DET_SIZE = 512;
const NUM_PRIORS = 5118;
const LM_SIZE = 112;
const MEAN_RGB = [122.782, 117.001, 104.298]; // FaceFeatureExtractor.ts
const MIN_CONFIDENCE = 0.5;

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function noiseRgb(seed, h, w, smooth) {
  const rnd = mulberry32(seed);
  const data = new Uint8Array(h * w * 3);
  if (!smooth) {
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(rnd() * 256);
  } else {
    const c = [rnd(), rnd(), rnd(), rnd(), rnd(), rnd()];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let ch = 0; ch < 3; ch++) {
          const v = 128 + 90 * Math.sin((x * c[ch] + y * c[ch + 3]) / 9 + ch) + 30 * (rnd() - 0.5);
          data[(y * w + x) * 3 + ch] = Math.max(0, Math.min(255, Math.round(v)));
        }
      }
    }
  }
  return { width: w, height: h, data };
}

const toTensor = (img) => tf.tensor3d(Int32Array.from(img.data), [img.height, img.width, 3], 'int32');

// ------------------------------------------------------------------ capture hooks
// face-api calls this.forwardInput(netInput) on the global net instances; wrap them there.
let detCapture = null;
let lmCaptures = [];
function installHooks() {
  const ssd = faceapi.nets.ssdMobilenetv1;
  const ssdOrig = ssd.forwardInput.bind(ssd);
  ssd.forwardInput = (netInput) => {
    const input = tf.tidy(() => tf.sub(tf.div(tf.cast(netInput.toBatchTensor(DET_SIZE, false), 'float32'), 127.5), 1));
    const res = ssdOrig(netInput);
    detCapture = {
      input: input.dataSync().slice(),
      boxes: res.boxes[0].dataSync().slice(),
      scores: res.scores[0].dataSync().slice(),
      reshaped: netInput.getReshapedInputDimensions(0),
    };
    input.dispose();
    return res;
  };
  const lm = faceapi.nets.faceLandmark68Net;
  const lmOrig = lm.forwardInput.bind(lm);
  lm.forwardInput = (netInput) => {
    const cap = tf.tidy(() => {
      const x = faceapi.normalize(tf.cast(netInput.toBatchTensor(LM_SIZE, true), 'float32'), MEAN_RGB).div(255);
      return { input: x.dataSync().slice(), raw: lm.runNet(netInput).dataSync().slice() };
    });
    const out = lmOrig(netInput);
    cap.post = out.dataSync().slice();
    cap.dims = netInput.inputDimensions[0]; // [h, w, c]
    lmCaptures.push(cap);
    return out;
  };
}

// ------------------------------------------------------------------ PNG (for looking at results)
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xFFFFFFFF;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
}
function pngChunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function writeAnnotatedPng(file, img, faces, scale) {
  const w = Math.floor(img.width / scale);
  const h = Math.floor(img.height / scale);
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    px[(y * w + x) * 3 + c] = img.data[((y * scale) * img.width + x * scale) * 3 + c];
  }
  const put = (x, y, rgb) => {
    x = Math.round(x); y = Math.round(y);
    if (x >= 0 && y >= 0 && x < w && y < h) rgb.forEach((v, c) => { px[(y * w + x) * 3 + c] = v; });
  };
  faces.forEach((f) => {
    const b = f.box;
    const [x0, y0, x1, y1] = [b.x / scale, b.y / scale, (b.x + b.width) / scale, (b.y + b.height) / scale];
    for (let t = -1; t <= 1; t++) {
      for (let x = x0; x <= x1; x++) { put(x, y0 + t, [255, 0, 0]); put(x, y1 + t, [255, 0, 0]); }
      for (let y = y0; y <= y1; y++) { put(x0 + t, y, [255, 0, 0]); put(x1 + t, y, [255, 0, 0]); }
    }
    (f.landmarks || []).forEach(([lx, ly]) => {
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) put(lx / scale + dx, ly / scale + dy, [0, 255, 0]);
    });
  });
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) px.copy(raw, y * (w * 3 + 1) + 1, y * w * 3, (y + 1) * w * 3);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  fs.writeFileSync(file, Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))]));
}

// ------------------------------------------------------------------ main
const r4 = (v) => Math.round(v * 1e4) / 1e4;

async function useBackend(name) {
  if (name === 'wasm') tf.setWasmPaths(`${path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'))}/dist/`);
  if (!(await tf.setBackend(name))) throw new Error(`cannot set tfjs backend ${name}`);
  await tf.ready();
  if (tf.getBackend() !== name) throw new Error(`backend is ${tf.getBackend()}, wanted ${name}`);
}

async function main() {
  if (os.endianness() !== 'LE') throw new Error('big-endian host: output would not be LE');
  fs.mkdirSync(outDir, { recursive: true });
  const demoDir = path.join(pkgDir, 'demo');
  const samples = fs.readdirSync(demoDir).filter((f) => /^sample\d+\.jpg$/.test(f)).sort();
  if (samples.length === 0) throw new Error(`no demo/sample*.jpg in ${demoDir}`);

  const detCases = samples.map((file) => {
    const d = jpeg.decode(fs.readFileSync(path.join(demoDir, file)), { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
    return { name: file.replace('.jpg', ''), kind: 'photo', source: `@vladmandic/face-api/demo/${file}`, img: { width: d.width, height: d.height, data: d.data } };
  });
  // noise: square 512 (fed as is) and non-square sizes (exercise the bottom/right padding + resize)
  for (const [seed, h, w, smooth] of [[11, 512, 512, false], [12, 512, 512, true], [13, 300, 500, true], [14, 500, 317, false]]) {
    detCases.push({ name: `noise-${seed}-${h}x${w}${smooth ? '-smooth' : ''}`, kind: 'noise', source: `mulberry32 seed ${seed}`, img: noiseRgb(seed, h, w, smooth) });
  }

  await useBackend('cpu');
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(modelDir);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(modelDir);
  installHooks();
  const opts = new faceapi.SsdMobilenetv1Options({ minConfidence: MIN_CONFIDENCE });

  const n = detCases.length;
  const detInputs = new Float32Array(n * DET_SIZE * DET_SIZE * 3);
  const detBoxes = new Float32Array(n * NUM_PRIORS * 4);
  const detScores = new Float32Array(n * NUM_PRIORS);
  const lmCases = [];
  const detMeta = [];
  const expected = [];
  const lmExpected = [];

  for (let i = 0; i < n; i++) {
    const c = detCases[i];
    const t0 = Date.now();
    const image = toTensor(c.img);
    detCapture = null;
    lmCaptures = [];
    // face-api's full public pipeline, cpu backend
    const results = await faceapi.detectAllFaces(image, opts).withFaceLandmarks();
    if (!detCapture) throw new Error('SSD forwardInput hook not called');
    if (lmCaptures.length !== results.length) throw new Error(`landmark captures ${lmCaptures.length} != faces ${results.length}`);
    detInputs.set(detCapture.input, i * DET_SIZE * DET_SIZE * 3);
    detBoxes.set(detCapture.boxes, i * NUM_PRIORS * 4);
    detScores.set(detCapture.scores, i * NUM_PRIORS);
    fs.writeFileSync(path.join(outDir, `img_${c.name}.rgb`), Buffer.from(c.img.data.buffer, c.img.data.byteOffset, c.img.data.byteLength));

    // the crops face-api fed the landmark net (same call it makes), for verify_detector.py
    const crops = results.length ? await faceapi.extractFaceTensors(image, results.map((r) => r.detection)) : [];
    const faces = results.map((r, k) => {
      const b = r.detection.box;
      const crop = crops[k];
      const cropName = `${c.name}-face${k}`;
      const cropData = Uint8Array.from(crop.dataSync());
      fs.writeFileSync(path.join(outDir, `crop_${cropName}.rgb`), Buffer.from(cropData.buffer));
      const cap = lmCaptures[k];
      if (cap.dims[0] !== crop.shape[0] || cap.dims[1] !== crop.shape[1]) throw new Error(`crop shape mismatch for ${cropName}`);
      lmCases.push({ name: cropName, kind: 'face', source: `${c.source} face ${k}`, shape: crop.shape, cap });
      crop.dispose();
      const lms = r.landmarks.positions.map((p) => [r4(p.x), r4(p.y)]);
      const cb = r.detection.box.clipAtImageBorders(c.img.width, c.img.height);
      lmExpected.push({ photo: c.name, face: k, crop_box: { x: cb.x, y: cb.y, width: cb.width, height: cb.height }, shift: { x: b.x, y: b.y }, landmarks68: lms });
      return { score: r.detection.score, box: { x: b.x, y: b.y, width: b.width, height: b.height }, landmarks: lms };
    });
    image.dispose();
    detMeta.push({ name: c.name, kind: c.kind, source: c.source, height: c.img.height, width: c.img.width, reshaped: detCapture.reshaped, faces_cpu: faces.length });
    expected.push({ name: c.name, kind: c.kind, width: c.img.width, height: c.img.height, faces: faces.map((f) => ({ score: f.score, box: f.box })) });
    if (writePng && c.kind === 'photo') writeAnnotatedPng(path.join(outDir, `${c.name}.png`), c.img, faces, 2);
    console.log(`${c.name}: ${c.img.width}x${c.img.height}, ${faces.length} faces (cpu, ${Date.now() - t0} ms)`);
  }

  // landmark noise crops (non-square sizes exercise the centred padding)
  await useBackend('cpu');
  for (const [seed, h, w, smooth] of [[21, 112, 112, false], [22, 112, 112, true], [23, 90, 130, true], [24, 151, 97, false]]) {
    const img = noiseRgb(seed, h, w, smooth);
    const name = `noise-${seed}-${h}x${w}${smooth ? '-smooth' : ''}`;
    lmCaptures = [];
    const t = toTensor(img);
    await faceapi.nets.faceLandmark68Net.detectLandmarks(t);
    t.dispose();
    fs.writeFileSync(path.join(outDir, `crop_${name}.rgb`), Buffer.from(img.data.buffer));
    lmCases.push({ name, kind: 'noise', source: `mulberry32 seed ${seed}`, shape: [h, w, 3], cap: lmCaptures[0] });
  }

  // the photos again on the wasm backend: raw outputs + face counts, for comparison only
  const photos = detCases.filter((c) => c.kind === 'photo');
  const wasmBoxes = new Float32Array(photos.length * NUM_PRIORS * 4);
  const wasmScores = new Float32Array(photos.length * NUM_PRIORS);
  let wasmOk = true;
  try {
    await useBackend('wasm');
  } catch (err) {
    wasmOk = false;
    console.warn(`wasm backend unavailable (${err.message}); skipping the wasm comparison`);
  }
  if (wasmOk) {
    for (let i = 0; i < photos.length; i++) {
      const image = toTensor(photos[i].img);
      detCapture = null;
      const dets = await faceapi.detectAllFaces(image, opts);
      image.dispose();
      wasmBoxes.set(detCapture.boxes, i * NUM_PRIORS * 4);
      wasmScores.set(detCapture.scores, i * NUM_PRIORS);
      const m = detMeta.find((d) => d.name === photos[i].name);
      m.faces_wasm = dets.length;
      expected.find((e) => e.name === photos[i].name).faces_wasm = dets.length;
    }
  }

  const le = (arr) => Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
  fs.writeFileSync(path.join(outDir, 'det_inputs.f32'), le(detInputs));
  fs.writeFileSync(path.join(outDir, 'det_boxes.f32'), le(detBoxes));
  fs.writeFileSync(path.join(outDir, 'det_scores.f32'), le(detScores));
  if (wasmOk) {
    fs.writeFileSync(path.join(outDir, 'det_boxes_wasm.f32'), le(wasmBoxes));
    fs.writeFileSync(path.join(outDir, 'det_scores_wasm.f32'), le(wasmScores));
  }
  const m = lmCases.length;
  const lmInputs = new Float32Array(m * LM_SIZE * LM_SIZE * 3);
  const lmRaw = new Float32Array(m * 136);
  const lmPost = new Float32Array(m * 136);
  lmCases.forEach((c, i) => {
    lmInputs.set(c.cap.input, i * LM_SIZE * LM_SIZE * 3);
    lmRaw.set(c.cap.raw, i * 136);
    lmPost.set(c.cap.post, i * 136);
  });
  fs.writeFileSync(path.join(outDir, 'lm_inputs.f32'), le(lmInputs));
  fs.writeFileSync(path.join(outDir, 'lm_raw.f32'), le(lmRaw));
  fs.writeFileSync(path.join(outDir, 'lm_post.f32'), le(lmPost));

  const versions = { faceapi: faceapi.version, tfjs: tf.version_core, reference_backend: 'cpu', node: process.version };
  fs.writeFileSync(path.join(outDir, 'cases.json'), `${JSON.stringify({
    ...versions,
    wasm: wasmOk,
    det: { size: DET_SIZE, num_priors: NUM_PRIORS, normalization: 'x/127.5-1', pad: 'bottom-right', cases: detMeta },
    lm: { size: LM_SIZE, mean_rgb: MEAN_RGB, std: 255, pad: 'centre', cases: lmCases.map((c) => ({ name: c.name, kind: c.kind, source: c.source, shape: c.shape })) },
  }, null, 1)}\n`);

  const options = { minConfidence: opts.minConfidence, maxResults: opts.maxResults, iouThreshold: 0.5 };
  fs.writeFileSync(path.join(here, 'detector_expected.json'), `${JSON.stringify({
    description: 'face-api detectAllFaces(img, new SsdMobilenetv1Options({minConfidence: 0.5})) on the package demo photos and seeded noise (see verify_detector.mjs); box = pixel x, y, width, height in the original image; faces_wasm = count on the tfjs wasm backend',
    ...versions,
    options,
    images: expected.map((e) => ({ ...e, faces: e.faces.map((f) => ({ score: r4(f.score), box: { x: r4(f.box.x), y: r4(f.box.y), width: r4(f.box.width), height: r4(f.box.height) } })) })),
  }, null, 1)}\n`);
  fs.writeFileSync(path.join(here, 'landmarks_expected.json'), `${JSON.stringify({
    description: 'face-api detectAllFaces(img, SsdMobilenetv1Options({minConfidence: 0.5})).withFaceLandmarks() on the package demo photos: landmarks68 = 68 (x, y) pixel positions in the original image (iBUG 68 order); crop_box = the integer crop face-api fed the landmark net; shift = the (unfloored) detection box origin added to the crop-relative points',
    ...versions,
    faces: [],
  }, null, 1).replace('"faces": []', `"faces": [\n${lmExpected.map((f) => `  ${JSON.stringify(f)}`).join(',\n')}\n ]`)}\n`);
  console.log(`face-api ${faceapi.version}, tfjs ${tf.version_core}: wrote ${n} detector cases, ${m} landmark cases to ${outDir}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
