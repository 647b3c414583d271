//! A document as a PDF: A4 pages of text and rules laid out top-down (`Layout`), then
//! written with `pdf-writer`, each font embedded as the subset of glyphs the pages use.
//! What goes on the page, and where, is `sheet.rs`'s.

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use super::font::{Font, Style};
use crate::error::Result;

/// A4 in points.
pub const PAGE_WIDTH: f32 = 595.0;
pub const PAGE_HEIGHT: f32 = 842.0;
pub const MARGIN: f32 = 28.0;
/// The page footer's size.
const FOOTER_SIZE: f32 = 7.0;
/// The smallest size a figure is shrunk to so it fits its column.
const SIZE_MIN: f32 = 5.0;

/// How text sits against its x.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

enum Op {
    Text {
        style: Style,
        size: f32,
        gray: f32,
        x: f32,
        y: f32,
        text: String,
    },
    Rule {
        x1: f32,
        x2: f32,
        y: f32,
    },
}

/// Pages being laid out, the cursor `y` going down each page.
pub struct Layout {
    regular: Font,
    bold: Font,
    pages: Vec<Vec<Op>>,
    pub y: f32,
}

impl Layout {
    pub fn new() -> Result<Layout> {
        Ok(Layout {
            regular: Font::new(Style::Regular)?,
            bold: Font::new(Style::Bold)?,
            pages: vec![Vec::new()],
            y: PAGE_HEIGHT - MARGIN,
        })
    }

    fn font(&self, style: Style) -> &Font {
        match style {
            Style::Regular => &self.regular,
            Style::Bold => &self.bold,
        }
    }

    pub fn width(&self, style: Style, text: &str, size: f32) -> f32 {
        self.font(style).width(text, size)
    }

    /// Starts a new page when less than `needed` points are left above the bottom margin;
    /// returns whether it did.
    pub fn need(&mut self, needed: f32) -> bool {
        if self.y - needed >= MARGIN {
            return false;
        }
        self.pages.push(Vec::new());
        self.y = PAGE_HEIGHT - MARGIN;
        true
    }

    fn push(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    /// Text at (x, y); past `max_width` it is first shrunk (down to `SIZE_MIN`), then cut
    /// short with an ellipsis, so it never runs into the next column.
    #[allow(clippy::too_many_arguments)]
    pub fn text(
        &mut self,
        style: Style,
        size: f32,
        gray: f32,
        (x, y): (f32, f32),
        align: Align,
        max_width: f32,
        text: &str,
    ) {
        let font = self.font(style);
        let mut size = size;
        while size > SIZE_MIN && font.width(text, size) > max_width {
            size -= 0.5;
        }
        let shown = self.clip(style, size, max_width, text);
        let font = self.font(style);
        let x = match align {
            Align::Left => x,
            Align::Right => x - font.width(&shown, size),
        };
        self.push(Op::Text {
            style,
            size,
            gray,
            x,
            y,
            text: shown,
        });
    }

    /// `text` cut short with an ellipsis to fit `max_width` at `size` (whole if it fits).
    pub fn clip(&self, style: Style, size: f32, max_width: f32, text: &str) -> String {
        let font = self.font(style);
        if font.width(text, size) <= max_width {
            return text.to_string();
        }
        let mut kept: Vec<char> = text.chars().collect();
        let cut = |kept: &[char]| kept.iter().collect::<String>() + "…";
        while !kept.is_empty() && font.width(&cut(&kept), size) > max_width {
            kept.pop();
        }
        cut(&kept)
    }

    /// `text` broken into lines no wider than `max_width`, at word boundaries.
    pub fn wrap(&self, style: Style, size: f32, max_width: f32, text: &str) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && self.width(style, &candidate, size) > max_width {
                lines.push(std::mem::replace(&mut line, word.to_string()));
            } else {
                line = candidate;
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }

    /// A horizontal rule across from x1 to x2 at the cursor.
    pub fn rule(&mut self, x1: f32, x2: f32) {
        let y = self.y;
        self.push(Op::Rule { x1, x2, y });
    }

    /// The document: its pages, both fonts subset to what they show.
    pub fn finish(mut self, title: &str) -> Result<Vec<u8>> {
        let mut pdf = Pdf::new();
        let mut next = 1;
        let mut alloc = || {
            next += 1;
            Ref::new(next - 1)
        };
        let (catalog, tree, info) = (alloc(), alloc(), alloc());
        let regular_ids = [alloc(), alloc(), alloc(), alloc(), alloc()];
        let bold_ids = [alloc(), alloc(), alloc(), alloc(), alloc()];
        let pages: Vec<(Ref, Ref)> = self.pages.iter().map(|_| (alloc(), alloc())).collect();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree)
            .kids(pages.iter().map(|(page, _)| *page))
            .count(i32::try_from(pages.len()).unwrap_or(i32::MAX));
        pdf.document_info(info)
            .title(TextStr(title))
            .producer(TextStr("Till"));
        let mut ops = std::mem::take(&mut self.pages);
        let count = ops.len();
        if count > 1 {
            // Each page of a long document says whose page it is and which.
            for (at, page) in ops.iter_mut().enumerate() {
                let text = format!("{title} · page {} of {count}", at + 1);
                let x = PAGE_WIDTH - MARGIN - self.regular.width(&text, FOOTER_SIZE);
                page.push(Op::Text {
                    style: Style::Regular,
                    size: FOOTER_SIZE,
                    gray: 0.35,
                    x,
                    y: MARGIN / 2.0,
                    text,
                });
            }
        }
        for ((page_id, content_id), ops) in pages.iter().zip(ops) {
            let content = self.content(ops);
            let mut page = pdf.page(*page_id);
            page.parent(tree)
                .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
                .contents(*content_id);
            let mut resources = page.resources();
            let mut fonts = resources.fonts();
            fonts.pair(Name(b"F1"), regular_ids[0]);
            fonts.pair(Name(b"F2"), bold_ids[0]);
            fonts.finish();
            resources.finish();
            page.finish();
            pdf.stream(*content_id, &deflate(&content))
                .filter(Filter::FlateDecode);
        }
        self.regular.write(&mut pdf, regular_ids)?;
        self.bold.write(&mut pdf, bold_ids)?;
        Ok(pdf.finish())
    }

    /// One page's content stream, its glyphs recorded in the fonts for their subsets.
    fn content(&mut self, ops: Vec<Op>) -> Vec<u8> {
        let mut content = Content::new();
        for op in ops {
            match op {
                Op::Text {
                    style,
                    size,
                    gray,
                    x,
                    y,
                    text,
                } => {
                    let (name, font) = match style {
                        Style::Regular => (Name(b"F1"), &mut self.regular),
                        Style::Bold => (Name(b"F2"), &mut self.bold),
                    };
                    let glyphs = font.encode(&text);
                    content
                        .set_fill_gray(gray)
                        .begin_text()
                        .set_font(name, size)
                        .set_text_matrix([1.0, 0.0, 0.0, 1.0, x, y])
                        .show(Str(&glyphs))
                        .end_text();
                }
                Op::Rule { x1, x2, y } => {
                    content
                        .set_line_width(0.5)
                        .set_stroke_gray(0.6)
                        .move_to(x1, y)
                        .line_to(x2, y)
                        .stroke();
                }
            }
        }
        content.finish().into_vec()
    }
}

/// Deflated (zlib) stream data, for `/FlateDecode`: fonts and page content shrink by half
/// or more.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    /// miniz's default level: nearly the smallest output at a fraction of level 10's time.
    const LEVEL: u8 = 6;
    miniz_oxide::deflate::compress_to_vec_zlib(data, LEVEL)
}
