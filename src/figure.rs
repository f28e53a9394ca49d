//! Labelled pictures for the CLI and the GUI's export: a comparison row (the input, then every kind)
//! and the paper's all-layers figure. Text is drawn with the Ubuntu font egui ships.

use crate::compare::{colour_bar, error_map, switches_map, ERROR_SCALE_MAX};
use crate::model::{Kind, Layer};
use crate::recon::Reconstruction;
use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

/// What a figure (and the app's main view) shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// The input, then every kind's reconstruction.
    #[default]
    Compare,
    /// The comparison and under it the error maps.
    Diff,
    /// The layer's code channel by channel, to switch channels off.
    Channels,
    /// The paper's figure: every layer, every kind.
    AllLayers,
}

impl View {
    pub const ALL: [View; 4] = [View::Compare, View::Diff, View::Channels, View::AllLayers];

    pub fn name(self) -> &'static str {
        match self {
            View::Compare => "compare",
            View::Diff => "diff",
            View::Channels => "channels",
            View::AllLayers => "all-layers",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            View::Compare => "Compare",
            View::Diff => "Error maps",
            View::Channels => "Channels",
            View::AllLayers => "All layers",
        }
    }
}

crate::named::named_enum!(View);

const GAP: u32 = 8;
const TEXT: u32 = 22;
const BG: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([20, 20, 20]);

/// The caption under a reconstruction: PSNR (∞ for an exact copy) and SSIM.
pub fn caption(psnr: f64, ssim: f64) -> String {
    let p = if psnr.is_finite() { format!("{psnr:.1} dB") } else { "∞ dB".into() };
    format!("PSNR {p} · SSIM {ssim:.3}")
}

/// A picture with a caption above and one below.
pub struct Tile<'a> {
    pub image: &'a RgbImage,
    pub title: String,
    pub caption: String,
}

fn font() -> Option<FontRef<'static>> {
    FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT).ok()
}

/// Width in pixels of `text` at `px`.
pub fn text_width(text: &str, px: f32) -> f32 {
    let Some(f) = font() else { return 0.0 };
    let sf = f.as_scaled(PxScale::from(px));
    text.chars().map(|c| sf.h_advance(f.glyph_id(c))).sum()
}

/// Draw `text` with its top-left corner at `(x, y)`.
pub fn draw_text(img: &mut RgbImage, text: &str, x: f32, y: f32, px: f32) {
    let Some(f) = font() else { return };
    let sf = f.as_scaled(PxScale::from(px));
    let mut caret = x;
    for c in text.chars() {
        let id = f.glyph_id(c);
        let glyph = id.with_scale_and_position(PxScale::from(px), ab_glyph::point(caret, y + sf.ascent()));
        caret += sf.h_advance(id);
        if let Some(outline) = f.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, cov| {
                let (px_, py_) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                if px_ < 0 || py_ < 0 || px_ >= img.width() as i64 || py_ >= img.height() as i64 {
                    return;
                }
                let p = img.get_pixel_mut(px_ as u32, py_ as u32);
                for ch in 0..3 {
                    p[ch] = (p[ch] as f32 * (1.0 - cov) + INK[ch] as f32 * cov).round() as u8;
                }
            });
        }
    }
}

/// Draw `text` centred on `cx`, at `px` or smaller so that it fits in `max_w` pixels.
fn draw_centred(img: &mut RgbImage, text: &str, cx: f32, y: f32, px: f32, max_w: f32) {
    let w = text_width(text, px);
    let px = if w > max_w && w > 0.0 { (px * max_w / w).max(8.0) } else { px };
    draw_text(img, text, cx - text_width(text, px) / 2.0, y, px);
}

/// Tiles side by side, each with its title above and caption below.
pub fn row(tiles: &[Tile]) -> RgbImage {
    grid(&[], &[tiles.iter().map(Some).collect()])
}

/// A grid of tiles (`None` = empty cell) with optional row labels on the left.
pub fn grid(row_labels: &[String], rows: &[Vec<Option<&Tile>>]) -> RgbImage {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let cell_w = rows.iter().flatten().flatten().map(|t| t.image.width()).max().unwrap_or(1);
    let cell_h = rows.iter().flatten().flatten().map(|t| t.image.height()).max().unwrap_or(1);
    let label_w = if row_labels.is_empty() {
        0
    } else {
        row_labels.iter().map(|l| text_width(l, 20.0) as u32).max().unwrap_or(0) + 2 * GAP
    };
    let (w, h) = (label_w + cols * (cell_w + GAP) + GAP, rows.len() as u32 * (cell_h + 2 * TEXT + GAP) + GAP);
    let mut img = RgbImage::from_pixel(w, h, BG);
    for (r, row) in rows.iter().enumerate() {
        let y0 = GAP + r as u32 * (cell_h + 2 * TEXT + GAP);
        if let Some(l) = row_labels.get(r) {
            draw_text(&mut img, l, GAP as f32, (y0 + TEXT + cell_h / 2) as f32 - 10.0, 20.0);
        }
        for (c, tile) in row.iter().enumerate() {
            let Some(t) = tile else { continue };
            let x0 = label_w + GAP + c as u32 * (cell_w + GAP);
            let cx = (x0 + cell_w / 2) as f32;
            draw_centred(&mut img, &t.title, cx, (y0 + 2) as f32, 17.0, (cell_w - 4) as f32);
            image::imageops::replace(&mut img, t.image, x0 as i64, (y0 + TEXT) as i64);
            draw_centred(&mut img, &t.caption, cx, (y0 + TEXT + cell_h + 3) as f32, 15.0, (cell_w + GAP - 4) as f32);
        }
    }
    img
}

/// An error map's title: "|input − SAE|".
pub fn error_title(kind: Kind) -> String {
    format!("|input − {}|", kind.label())
}

/// The title of the map between the two kinds of [`Kind::switch_pair`]: "|SWWAE − SAE|: what
/// the switches change".
pub fn switches_title() -> Option<String> {
    Kind::switch_pair()
        .map(|(fixed, recorded)| format!("|{} − {}|: what the switches change", recorded.label(), fixed.label()))
}

/// The caption under an error map: its mean, 0–255 units.
pub fn mean_caption(mean: f64) -> String {
    format!("mean {mean:.1}")
}

/// The error maps' colour scale: its title and the labels of its five ticks (0, ¼, ½, ¾, the
/// top, which saturates).
pub const SCALE_TITLE: &str = "|difference|, 0–255 units";

pub fn scale_ticks() -> [String; 5] {
    let max = ERROR_SCALE_MAX as u32;
    [0, max / 4, max / 2, 3 * max / 4, max].map(|v| if v == max { format!("{v}+") } else { v.to_string() })
}

/// The error maps of a comparison: each picture against the input, then, where both kinds of
/// [`Kind::switch_pair`] are there, the one with the switches against the one without (what the
/// switches carry). Titles and maps (with their mean), in that order.
pub fn error_maps(input: &RgbImage, pictures: &[(Kind, &RgbImage)]) -> Vec<(String, (RgbImage, f64))> {
    let mut maps: Vec<(String, (RgbImage, f64))> =
        pictures.iter().map(|(k, img)| (error_title(*k), error_map(input, img))).collect();
    if let (Some(map), Some(title)) = (switches_map(pictures), switches_title()) {
        maps.push((title, map));
    }
    maps
}

/// The comparison row, and under it the error maps ([`error_maps`]) with their colour scale.
pub fn diff_figure(input: &RgbImage, pictures: &[(Kind, &RgbImage)], top: &[Tile]) -> RgbImage {
    let maps = error_maps(input, pictures);
    let scale = scale_tile(input.width(), input.height());
    let mut bottom = vec![Tile { image: &scale, title: SCALE_TITLE.into(), caption: String::new() }];
    for (title, (map, mean)) in &maps {
        bottom.push(Tile { image: map, title: title.clone(), caption: mean_caption(*mean) });
    }
    grid(&[], &[top.iter().map(Some).collect(), bottom.iter().map(Some).collect()])
}

/// A white tile with the error maps' colour bar and its ticks.
pub fn scale_tile(w: u32, h: u32) -> RgbImage {
    let mut tile = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let (bar_w, bar_h, x0, y0) = (w - 24, 28, 12, h / 2 - 14);
    image::imageops::replace(&mut tile, &colour_bar(bar_w, bar_h), x0 as i64, y0 as i64);
    for (i, label) in scale_ticks().iter().enumerate() {
        let x = x0 as f32 + i as f32 * (bar_w - 1) as f32 / 4.0;
        // The ends inside the bar's span, the rest centred on their tick.
        let w = text_width(label, 14.0);
        let left = match i {
            0 => x,
            4 => x - w,
            _ => x - w / 2.0,
        };
        draw_text(&mut tile, label, left, (y0 + bar_h + 4) as f32, 14.0);
    }
    tile
}

/// How a layer's code was changed before the decoders saw it, as titles say it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodeChange {
    /// Channels kept of the layer's code: (kept, all).
    pub kept: Option<(usize, usize)>,
    /// The photo whose pooling switches decoded it (file name); only kinds that read switches
    /// are changed by it.
    pub switches_of: Option<String>,
}

/// A reconstruction's title, the same in the app, its exports and the CLI's figures:
/// "SWWAE from pool3 · bundled · 32 of 256 channels · switches of rocket.jpg" (`source`, the
/// decoder's set, left out where the app shows it on a line of its own; `layer` left out for a
/// row of the all-layers figure).
pub fn recon_title(kind: Kind, layer: Option<Layer>, source: Option<&str>, change: &CodeChange) -> String {
    let mut t = kind.label().to_string();
    if let Some(l) = layer {
        t += &format!(" from {l}");
    }
    if let Some(s) = source {
        t += &format!(" · {s}");
    }
    if let Some((kept, all)) = change.kept {
        t += &format!(" · {kept} of {all} channels");
    }
    if let (true, Some(other)) = (kind.reads_switches(), &change.switches_of) {
        t += &format!(" · switches of {other}");
    }
    t
}

/// A row of the all-layers figure: its label and its reconstructions, one per layer.
pub type LayerRow<'a> = (String, Vec<&'a Reconstruction>);

/// A picture of a figure: the name of its decoder's set ("" where the set is not named) and the
/// reconstruction.
pub type Shot<'a> = (String, &'a Reconstruction);

/// The picture of a view, the same from `layerinv reconstruct`, the app's File > Export view and
/// its Copy: the input (captioned `name`) and `rows` of reconstructions, each titled by
/// [`recon_title`] and captioned by [`caption`].
/// - Compare (and Channels, whose channel sheet the app adds): the input, then each row's
///   pictures; a row per set of decoders (the CLI's `--decoders`) or one row (the app's panes);
///   `extra` (the app's training preview) after the first row's.
/// - Diff: the first row and `extra`, and under it [`diff_figure`]'s error maps.
/// - All layers: [`all_layers`], a row per set and kind in the order they come.
pub fn figure<'a>(
    view: View,
    input: &'a RgbImage,
    name: &str,
    rows: &[Vec<Shot<'a>>],
    change: &CodeChange,
    extra: Vec<Tile<'a>>,
) -> RgbImage {
    let set = |label: &str| (!label.is_empty()).then(|| label.to_string());
    if view == View::AllLayers {
        let change = CodeChange { kept: None, ..change.clone() };
        let mut out: Vec<(String, Kind, Vec<&Reconstruction>)> = Vec::new();
        let mut labels: Vec<&str> = Vec::new();
        for (label, r) in rows.iter().flatten() {
            if !labels.contains(&label.as_str()) {
                labels.push(label);
            }
            match out.iter_mut().find(|(l, k, _)| l == label && *k == r.kind) {
                Some((_, _, row)) => row.push(r),
                None => out.push((label.clone(), r.kind, vec![r])),
            }
        }
        out.sort_by_key(|(l, k, _)| (labels.iter().position(|m| m == l), *k));
        let rows: Vec<LayerRow> =
            out.into_iter().map(|(l, k, row)| (recon_title(k, None, set(&l).as_deref(), &change), row)).collect();
        return all_layers(input, &rows);
    }
    let tile = |(label, r): &Shot<'a>| -> Tile<'a> {
        Tile {
            image: &r.image,
            title: recon_title(r.kind, Some(r.layer), set(label).as_deref(), change),
            caption: caption(r.psnr, r.ssim),
        }
    };
    let input_tile = Tile { image: input, title: "input".into(), caption: name.to_string() };
    let mut tiles: Vec<Vec<Tile>> = rows.iter().map(|row| row.iter().map(tile).collect()).collect();
    if tiles.is_empty() {
        tiles.push(Vec::new());
    }
    tiles[0].extend(extra);
    if view == View::Diff {
        let pictures: Vec<(Kind, &RgbImage)> =
            rows.first().into_iter().flatten().map(|(_, r)| (r.kind, &r.image)).collect();
        let top: Vec<Tile> = std::iter::once(input_tile).chain(tiles.swap_remove(0)).collect();
        return diff_figure(input, &pictures, &top);
    }
    // The input once, in the first row.
    let cells: Vec<Vec<Option<&Tile>>> = tiles
        .iter()
        .enumerate()
        .map(|(i, row)| std::iter::once((i == 0).then_some(&input_tile)).chain(row.iter().map(Some)).collect())
        .collect();
    grid(&[], &cells)
}

/// The paper's figure: the input, then a column per layer, a labelled row per decoder (a kind, or
/// a kind of one set of decoders).
pub fn all_layers(input: &RgbImage, rows: &[LayerRow]) -> RgbImage {
    let input_tile = Tile { image: input, title: "input".into(), caption: String::new() };
    let mut layers: Vec<Layer> = Vec::new();
    for r in rows.iter().flat_map(|(_, recs)| recs) {
        if !layers.contains(&r.layer) {
            layers.push(r.layer);
        }
    }
    let tiles: Vec<Vec<Option<Tile>>> = rows
        .iter()
        .map(|(_, recs)| {
            layers
                .iter()
                .map(|l| {
                    recs.iter().find(|r| r.layer == *l).map(|r| Tile {
                        image: &r.image,
                        title: r.layer.to_string(),
                        caption: caption(r.psnr, r.ssim),
                    })
                })
                .collect()
        })
        .collect();
    let cells: Vec<Vec<Option<&Tile>>> = tiles
        .iter()
        .enumerate()
        .map(|(i, row)| {
            std::iter::once((i == 0).then_some(&input_tile)).chain(row.iter().map(Option::as_ref)).collect()
        })
        .collect();
    let labels: Vec<String> = rows.iter().map(|(l, _)| l.clone()).collect();
    grid(&labels, &cells)
}
