//! The fonts a document is set in: DejaVu Sans and DejaVu Sans Bold (assets/fonts, with
//! their license), which have the rupee sign. A PDF embeds each as a subset of the glyphs the
//! document uses (a few kilobytes instead of 700), as a CID font with a `ToUnicode` map so
//! its text can be searched and copied.

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Filter, Finish, Name, Pdf, Rect, Ref, Str};
use ttf_parser::{Face, GlyphId};

use crate::error::{Error, Result};

/// Which of the two faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Regular,
    Bold,
}

const REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// A face, and the characters a document set in it uses, in first-use order.
pub struct Font {
    pub style: Style,
    data: &'static [u8],
    face: Face<'static>,
    /// Each glyph used, first use first, with one character it shows: a glyph's place here
    /// is its id in the subset (after `.notdef` at 0).
    used: Vec<(u16, char)>,
}

impl Font {
    pub fn new(style: Style) -> Result<Font> {
        let data = match style {
            Style::Regular => REGULAR,
            Style::Bold => BOLD,
        };
        let face = Face::parse(data, 0)
            .map_err(|e| Error::Internal(anyhow::anyhow!("embedded font does not parse: {e}")))?;
        Ok(Font {
            style,
            data,
            face,
            used: Vec::new(),
        })
    }

    /// The glyph of a character; characters the font lacks show as `?`.
    fn glyph(&self, c: char) -> (u16, char) {
        match self.face.glyph_index(c) {
            Some(GlyphId(g)) => (g, c),
            None => (self.face.glyph_index('?').map_or(0, |g| g.0), '?'),
        }
    }

    /// The width of `text` at `size` points.
    pub fn width(&self, text: &str, size: f32) -> f32 {
        let units: u32 = text
            .chars()
            .map(|c| {
                let (g, _) = self.glyph(c);
                u32::from(self.face.glyph_hor_advance(GlyphId(g)).unwrap_or(0))
            })
            .sum();
        units as f32 * size / f32::from(self.face.units_per_em())
    }

    /// `text` as the subset's glyph ids, two bytes each (`Identity-H`), recording the glyphs.
    pub fn encode(&mut self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() * 2);
        for c in text.chars() {
            let (glyph, shown) = self.glyph(c);
            let at = match self.used.iter().position(|(g, _)| *g == glyph) {
                Some(at) => at,
                None => {
                    self.used.push((glyph, shown));
                    self.used.len() - 1
                }
            };
            // `.notdef` keeps id 0; the subset's ids follow first use.
            let id = u16::try_from(at + 1).unwrap_or(0);
            out.extend_from_slice(&id.to_be_bytes());
        }
        out
    }

    /// Writes the font (Type 0 over a CID TrueType font, its descriptor, the subset and its
    /// `ToUnicode` map) under `ids[0..5]`, referred to by `ids[0]`.
    pub fn write(&self, pdf: &mut Pdf, ids: [Ref; 5]) -> Result<()> {
        let [type0, cid, descriptor, file, cmap] = ids;
        let mut remapper = subsetter::GlyphRemapper::new();
        for (glyph, _) in &self.used {
            remapper.remap(*glyph);
        }
        let subset = subsetter::subset(self.data, 0, &remapper)
            .map_err(|e| Error::Internal(anyhow::anyhow!("font subset failed: {e:?}")))?;
        let name = match self.style {
            Style::Regular => Name(b"TILLAA+DejaVuSans"),
            Style::Bold => Name(b"TILLAB+DejaVuSans-Bold"),
        };
        let info = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };
        let per_em = f32::from(self.face.units_per_em());
        let scale = |v: f32| v * 1000.0 / per_em;
        pdf.type0_font(type0)
            .base_font(name)
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(cid)
            .to_unicode(cmap);
        let notdef = f32::from(self.face.glyph_hor_advance(GlyphId(0)).unwrap_or(0));
        let widths: Vec<f32> = std::iter::once(scale(notdef))
            .chain(self.used.iter().map(|(g, _)| {
                scale(f32::from(
                    self.face.glyph_hor_advance(GlyphId(*g)).unwrap_or(0),
                ))
            }))
            .collect();
        let mut cid_font = pdf.cid_font(cid);
        cid_font
            .subtype(CidFontType::Type2)
            .base_font(name)
            .system_info(info)
            .font_descriptor(descriptor)
            .cid_to_gid_map_predefined(Name(b"Identity"));
        cid_font.widths().consecutive(0, widths);
        cid_font.finish();
        let bbox = self.face.global_bounding_box();
        pdf.font_descriptor(descriptor)
            .name(name)
            .flags(FontFlags::SYMBOLIC)
            .bbox(Rect::new(
                scale(f32::from(bbox.x_min)),
                scale(f32::from(bbox.y_min)),
                scale(f32::from(bbox.x_max)),
                scale(f32::from(bbox.y_max)),
            ))
            .italic_angle(0.0)
            .ascent(scale(f32::from(self.face.ascender())))
            .descent(scale(f32::from(self.face.descender())))
            .cap_height(scale(f32::from(
                self.face.capital_height().unwrap_or(self.face.ascender()),
            )))
            .stem_v(match self.style {
                Style::Regular => 80.0,
                Style::Bold => 140.0,
            })
            .font_file2(file);
        let length = i32::try_from(subset.len()).unwrap_or(i32::MAX);
        pdf.stream(file, &super::pdf::deflate(&subset))
            .filter(Filter::FlateDecode)
            .pair(Name(b"Length1"), length);
        let mut unicode = UnicodeCmap::new(Name(b"Till-UTF16"), info);
        for (at, (_, c)) in self.used.iter().enumerate() {
            unicode.pair(u16::try_from(at + 1).unwrap_or(0), *c);
        }
        pdf.cmap(cmap, &super::pdf::deflate(&unicode.finish()))
            .filter(Filter::FlateDecode);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Font, Style};

    #[test]
    fn both_faces_have_the_rupee_sign() {
        for style in [Style::Regular, Style::Bold] {
            let font = Font::new(style).unwrap();
            assert_eq!(font.glyph('₹').1, '₹', "{style:?}");
            assert!(font.width("₹1,00,000.00", 10.0) > 30.0);
        }
    }

    #[test]
    fn glyphs_are_numbered_by_first_use() {
        let mut font = Font::new(Style::Regular).unwrap();
        assert_eq!(font.encode("aba"), vec![0, 1, 0, 2, 0, 1]);
        // A character the font lacks shows as `?`.
        assert_eq!(font.encode("\u{10FFFF}").len(), 2);
        assert_eq!(font.used.last().unwrap().1, '?');
    }
}
