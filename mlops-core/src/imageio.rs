//! Image files: which ones we handle, decoding with memory limits, encoding that keeps the
//! colour type where the format allows, and atomic writes.

use std::io::{Cursor, Write};
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::{Error, Result};

/// File extensions handled as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "bmp", "webp"];

/// Default decoder memory limit: 512 MiB per image. A header claiming a huge size is refused
/// before anything is allocated.
pub const DEFAULT_MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// The decoders behind [`decode`] (and the resizer of the `image` crate), with their
/// versions: part of feature-cache keys, since a new decoder can change a decoded pixel. A
/// test checks these against Cargo.lock, so an upgrade cannot leave them stale.
pub const DECODERS: &str = "image-0.25.10,zune-jpeg-0.5.15,png-0.18.1,gif-0.14.2,image-webp-0.2.4";

/// JPEG quality used when writing, Pillow's default (the original saved with Pillow).
pub const JPEG_QUALITY: u8 = 75;

/// The image format for a path's extension, if it is one we handle.
pub fn format_for_path(path: &Path) -> Option<ImageFormat> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some(ImageFormat::Png),
        "jpg" | "jpeg" => Some(ImageFormat::Jpeg),
        "gif" => Some(ImageFormat::Gif),
        "bmp" => Some(ImageFormat::Bmp),
        "webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Whether the path has one of [`IMAGE_EXTENSIONS`].
pub fn is_image_path(path: &Path) -> bool {
    format_for_path(path).is_some()
}

/// Decodes `bytes` (read from `path`, named in errors), detecting the format from the content,
/// refusing images whose decoding would need more than `max_alloc` bytes.
pub fn decode(path: &Path, bytes: &[u8], max_alloc: u64) -> Result<DynamicImage> {
    let decode_error = |source| Error::Decode {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_error(image::ImageError::IoError(e)))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    if reader.format().is_none() {
        return Err(decode_error(image::ImageError::Unsupported(
            image::error::UnsupportedError::from_format_and_kind(
                image::error::ImageFormatHint::Unknown,
                image::error::UnsupportedErrorKind::Format(image::error::ImageFormatHint::Unknown),
            ),
        )));
    }
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_has_end(bytes) {
        // The JPEG decoder pads a truncated scan with grey and reports success; a pipeline must
        // not train on half-grey photos, so we refuse them as Pillow does.
        return Err(decode_error(image::ImageError::Decoding(
            image::error::DecodingError::new(
                image::error::ImageFormatHint::Exact(ImageFormat::Jpeg),
                "truncated JPEG: the data ends before the end-of-image marker",
            ),
        )));
    }
    reader.decode().map_err(decode_error)
}

/// Whether JPEG data holds an end-of-image marker (`FF D9`) after its last start-of-scan
/// (`FF DA`). Neither pair can occur inside entropy-coded data (`FF` is stuffed there), so a
/// missing end marker means the file was cut short.
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let last_scan = bytes
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .unwrap_or(0);
    bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Reads and decodes an image file.
pub fn read_image(path: &Path, max_alloc: u64) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(path, &bytes, max_alloc)
}

/// The image converted to a colour type `format` can store, keeping it where possible:
/// JPEG stores 8-bit grey or RGB, GIF 8-bit RGBA, BMP and WebP 8-bit L/LA/RGB/RGBA,
/// PNG everything 8- and 16-bit.
fn encodable(image: &DynamicImage, format: ImageFormat) -> std::borrow::Cow<'_, DynamicImage> {
    use image::ColorType as C;
    use std::borrow::Cow;
    let color = image.color();
    let converted = match format {
        ImageFormat::Jpeg => match color {
            C::L8 | C::Rgb8 => None,
            C::L16 | C::La8 | C::La16 => Some(DynamicImage::ImageLuma8(image.to_luma8())),
            _ => Some(DynamicImage::ImageRgb8(image.to_rgb8())),
        },
        ImageFormat::Gif => (color != C::Rgba8).then(|| DynamicImage::ImageRgba8(image.to_rgba8())),
        ImageFormat::Png => match color {
            C::Rgb32F => Some(DynamicImage::ImageRgb16(image.to_rgb16())),
            C::Rgba32F => Some(DynamicImage::ImageRgba16(image.to_rgba16())),
            _ => None,
        },
        _ => match color {
            C::L8 | C::La8 | C::Rgb8 | C::Rgba8 => None,
            C::L16 => Some(DynamicImage::ImageLuma8(image.to_luma8())),
            C::La16 => Some(DynamicImage::ImageLumaA8(image.to_luma_alpha8())),
            c if c.has_alpha() => Some(DynamicImage::ImageRgba8(image.to_rgba8())),
            _ => Some(DynamicImage::ImageRgb8(image.to_rgb8())),
        },
    };
    converted.map_or(Cow::Borrowed(image), Cow::Owned)
}

/// Encodes `image` as `format` (for `path`, named in errors); JPEG at [`JPEG_QUALITY`] with
/// 4:2:0 chroma subsampling as Pillow writes it, WebP lossless (the only WebP encoder
/// available).
pub fn encode(image: &DynamicImage, format: ImageFormat, path: &Path) -> Result<Vec<u8>> {
    let image = encodable(image, format);
    let encode_error = |source| Error::Encode {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    if format == ImageFormat::Jpeg {
        encode_jpeg(&image, JPEG_QUALITY, &mut out).map_err(encode_error)?;
    } else {
        image
            .write_to(&mut Cursor::new(&mut out), format)
            .map_err(encode_error)?;
    }
    Ok(out)
}

/// The largest side libjpeg encodes.
const JPEG_MAX_SIDE: u32 = 65_500;

/// JPEG through mozjpeg's libjpeg-turbo with libjpeg v6 settings ("fastest" profile: baseline,
/// standard Huffman tables, no trellis), which writes the bytes Pillow (libjpeg-turbo) writes
/// for the same pixels and quality, 2-3x faster than a pure-Rust encoder here. `image` must be
/// 8-bit grey or RGB ([`encodable`] makes it so).
///
/// libjpeg reports errors by unwinding (mozjpeg's documented contract); the unwind is caught
/// here and becomes an encoding error. The sizes libjpeg refuses are checked first, so none is
/// expected.
pub(crate) fn encode_jpeg(
    image: &DynamicImage,
    quality: u8,
    out: &mut Vec<u8>,
) -> image::ImageResult<()> {
    use mozjpeg::{ColorSpace, Compress};
    let error = |message: String| {
        image::ImageError::Encoding(image::error::EncodingError::new(
            image::error::ImageFormatHint::Exact(ImageFormat::Jpeg),
            message,
        ))
    };
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 || width > JPEG_MAX_SIDE || height > JPEG_MAX_SIDE {
        return Err(image::ImageError::Limits(
            image::error::LimitError::from_kind(image::error::LimitErrorKind::DimensionError),
        ));
    }
    let space = match image {
        DynamicImage::ImageLuma8(_) => ColorSpace::JCS_GRAYSCALE,
        _ => ColorSpace::JCS_RGB,
    };
    let pixels = image.as_bytes();
    let encoded = std::panic::catch_unwind(|| -> std::io::Result<Vec<u8>> {
        let mut compress = Compress::new(space);
        compress.set_fastest_defaults();
        compress.set_size(width as usize, height as usize);
        compress.set_quality(f32::from(quality));
        let mut started = compress.start_compress(Vec::new())?;
        started.write_scanlines(pixels)?;
        started.finish()
    });
    match encoded {
        Ok(Ok(bytes)) => {
            *out = bytes;
            Ok(())
        }
        Ok(Err(e)) => Err(error(e.to_string())),
        Err(_) => Err(error("libjpeg refused the image".into())),
    }
}

/// Decodes a baseline JPEG written by [`encode_jpeg`] to 8-bit RGB with libjpeg-turbo (islow
/// DCT, fancy upsampling: Pillow's decoder settings), so a JPEG round trip gives Pillow's pixels.
pub(crate) fn decode_jpeg_rgb(bytes: &[u8]) -> std::io::Result<image::RgbImage> {
    let decoded = std::panic::catch_unwind(|| -> std::io::Result<image::RgbImage> {
        let mut started = mozjpeg::Decompress::new_mem(bytes)?.rgb()?;
        let (width, height) = (started.width() as u32, started.height() as u32);
        let pixels: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        image::RgbImage::from_raw(width, height, pixels)
            .ok_or_else(|| std::io::Error::other("libjpeg returned a short image"))
    });
    decoded.unwrap_or_else(|_| Err(std::io::Error::other("libjpeg refused the image")))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, renamed over the
/// destination, so a reader sees the old file or the whole new one, never a part. Creates the
/// parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".mlops-tmp-")
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    // Temporary files are created private (0600); a written result is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(tmp.path(), e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
