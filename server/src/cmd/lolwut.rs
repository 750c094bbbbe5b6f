//! LOLWUT [VERSION v] [args]: Redis's generative art, by version. Version 5 draws Georg
//! Nees's "Schotter" in braille dots, version 6 a skyline in ANSI colours; any other version
//! (7, the default, included) answers the version line alone, as Redis 7.0 does.

use super::{CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::protocol::Args;
use rand::Rng;

pub static COMMANDS: &[Spec] = &[spec(
    "lolwut",
    -1,
    READONLY | FAST,
    (0, 0, 0),
    "server",
    lolwut,
)];

fn lolwut(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (version, rest) = if args.len() >= 3 && eq(args.get(1), "version") {
        (int_arg(args.get(2))? as u32, args.slice_from(3))
    } else {
        (7, args.slice_from(1))
    };
    // Redis reads the arguments as C longs one by one, erroring on the first bad one.
    let nums = rest.iter().map(int_arg).collect::<Result<Vec<i64>, _>>();
    let mut rng = ctx.rng();
    let text = match version {
        5 => {
            let n = nums?;
            let at = |i: usize, default: i64, max: i64| {
                n.get(i).copied().unwrap_or(default).clamp(1, max)
            };
            let canvas = schotter(
                at(0, 66, 1000) as usize,
                at(1, 8, 200) as usize,
                at(2, 12, 200) as usize,
                &mut rng,
            );
            format!(
                "{}\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. {}\n",
                canvas.braille(),
                crate::REDIS_VERSION
            )
        }
        6 => {
            let n = nums?;
            let at = |i: usize, default: i64| n.get(i).copied().unwrap_or(default).clamp(1, 1000);
            let mut canvas = Canvas::new(at(0, 80) as usize, at(1, 20) as usize, 3);
            skyline(&mut canvas, &mut rng);
            format!(
                "{}\nDedicated to the 8 bit game developers of past and present.\nOriginal 8 bit image from Plaguemon by hikikomori. Redis ver. {}\n",
                canvas.ansi(),
                crate::REDIS_VERSION
            )
        }
        _ => format!("Redis ver. {}\n", crate::REDIS_VERSION),
    };
    ctx.reply.verbatim(text.as_bytes());
    Ok(())
}

struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize, background: u8) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![background; width * height],
        }
    }

    fn set(&mut self, x: i64, y: i64, color: u8) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[x as usize + y as usize * self.width] = color;
        }
    }

    fn get(&self, x: i64, y: i64) -> u8 {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[x as usize + y as usize * self.width]
        } else {
            0
        }
    }

    /// Bresenham's line, as Redis draws it.
    fn line(&mut self, mut x1: i64, mut y1: i64, x2: i64, y2: i64, color: u8) {
        let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
        let (sx, sy) = (if x1 < x2 { 1 } else { -1 }, if y1 < y2 { 1 } else { -1 });
        let mut err = dx - dy;
        loop {
            self.set(x1, y1, color);
            if x1 == x2 && y1 == y2 {
                break;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }

    /// A square of side `size` centred on (x, y), turned by `angle`; Redis computes in
    /// floats (single precision) and rounds each corner.
    fn square(&mut self, x: i64, y: i64, size: f32, angle: f32, color: u8) {
        let size = (size / std::f32::consts::SQRT_2).round();
        let mut k = std::f32::consts::FRAC_PI_4 + angle;
        let mut px = [0i64; 4];
        let mut py = [0i64; 4];
        for j in 0..4 {
            px[j] = (f64::from(k).sin() * f64::from(size) + x as f64).round() as i64;
            py[j] = (f64::from(k).cos() * f64::from(size) + y as f64).round() as i64;
            k += std::f32::consts::FRAC_PI_2;
        }
        for j in 0..4 {
            self.line(px[j], py[j], px[(j + 1) % 4], py[(j + 1) % 4], color);
        }
    }

    /// Two by four pixels per braille character.
    fn braille(&self) -> String {
        let mut text = String::new();
        let (w, h) = (self.width as i64, self.height as i64);
        let mut y = 0;
        while y < h {
            let mut x = 0;
            while x < w {
                let dots = [
                    (0, 0, 0),
                    (0, 1, 1),
                    (0, 2, 2),
                    (1, 0, 3),
                    (1, 1, 4),
                    (1, 2, 5),
                    (0, 3, 6),
                    (1, 3, 7),
                ];
                let byte = dots
                    .iter()
                    .filter(|(dx, dy, _)| self.get(x + dx, y + dy) != 0)
                    .fold(0u32, |b, (_, _, bit)| b | 1 << bit);
                text.push(char::from_u32(0x2800 + byte).unwrap_or(' '));
                x += 2;
            }
            if y != h - 1 {
                text.push('\n');
            }
            y += 4;
        }
        text
    }

    fn ansi(&self) -> String {
        let mut text = String::new();
        for y in 0..self.height as i64 {
            for x in 0..self.width as i64 {
                let code = match self.get(x, y) {
                    1 => "0;90;100m",
                    2 => "0;37;47m",
                    3 => "0;97;107m",
                    _ => "0;30;40m",
                };
                text.push_str(&format!("\x1b[{code} \x1b[0m"));
            }
            if y != self.height as i64 - 1 {
                text.push('\n');
            }
        }
        text
    }
}

/// Squares in a grid, more and more disordered from the third row down.
fn schotter(cols: usize, per_row: usize, per_col: usize, rng: &mut impl Rng) -> Canvas {
    let width = cols * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    let height = (side * per_col as f32) as usize + padding * 2;
    let mut canvas = Canvas::new(width, height, 0);
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i64;
            let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i64;
            let mut angle = 0.0;
            if y > 1 {
                let mut r = [0f32; 3];
                for v in &mut r {
                    *v = rng.random::<f32>() / per_col as f32 * y as f32;
                }
                for v in &mut r {
                    if rng.random::<bool>() {
                        *v = -*v;
                    }
                }
                angle = r[0];
                sx += (r[1] * side / 3.0) as i64;
                sy += (r[2] * side / 3.0) as i64;
            }
            canvas.square(sx, sy, side, angle, 1);
        }
    }
    canvas
}

/// Two rows of plain buildings in greys, then a row of black ones with lit windows.
fn skyline(canvas: &mut Canvas, rng: &mut impl Rng) {
    let h = canvas.height as i64;
    for color in [2u8, 1] {
        let mut offset: i64 = -10;
        while offset < canvas.width as i64 {
            offset += rng.random_range(0..8);
            let width = 10 + rng.random_range(0..9);
            let height = if color == 2 {
                h / 2 + rng.random_range(0..h.max(1)) / 2
            } else {
                h / 2 + rng.random_range(0..h.max(1)) / 3
            };
            building(canvas, offset, width, height, false, color, rng);
            offset += if color == 2 { width / 2 } else { width + 1 };
        }
    }
    let mut offset: i64 = -10;
    while offset < canvas.width as i64 {
        offset += rng.random_range(0..8);
        let mut width = 5 + rng.random_range(0..14);
        if width % 4 != 0 {
            width += width % 3;
        }
        let height = h / 3 + rng.random_range(0..h.max(1)) / 2;
        building(canvas, offset, width, height, true, 0, rng);
        offset += width + 5;
    }
}

fn building(
    canvas: &mut Canvas,
    xoff: i64,
    width: i64,
    height: i64,
    windows: bool,
    color: u8,
    rng: &mut impl Rng,
) {
    let starty = canvas.height as i64 - 1;
    let endy = starty - height + 1;
    let mut y = starty;
    while y >= endy {
        for x in xoff..xoff + width {
            if y == endy && (x <= xoff + 1 || x >= xoff + width - 2) {
                continue;
            }
            let mut c = color;
            if windows && x > xoff + 1 && x < xoff + width - 2 && y > endy + 1 && y < starty - 1 {
                let (relx, rely) = (x - (xoff + 1), y - (endy + 1));
                if (relx / 2) % 2 != 0 && rely % 2 != 0 {
                    // A lit or dark window (windows are drawn on black buildings only).
                    c = 1 + rng.random_range(0..2u8);
                    if relx % 2 != 0 {
                        c = canvas.get(x - 1, y);
                    }
                }
            }
            canvas.set(x, y, c);
        }
        y -= 1;
    }
}
