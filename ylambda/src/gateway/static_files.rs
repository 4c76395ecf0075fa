//! Files the dev server serves as they are on disk: the examples (`/examples/...`, from
//! `--examples-dir`), so an example page and the API it calls share one origin, as they would
//! behind one CloudFront distribution.
use std::path::{Component, Path, PathBuf};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The file `request_path` names under `root`, refusing anything that climbs out of it.
fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let relative = Path::new(request_path.trim_start_matches('/'));
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(root.join(relative))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("md") => "text/markdown; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Answers `GET /examples/{path}`: a directory is its `index.html`.
pub async fn serve(root: &Path, request_path: &str) -> Response {
    let Some(mut path) = resolve(root, request_path) else {
        return (StatusCode::FORBIDDEN, "forbidden path").into_response();
    };
    if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) {
        path.push("index.html");
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&path))], bytes).into_response(),
        Err(_) => (
            StatusCode::NOT_FOUND,
            format!("no file {request_path:?} under the examples directory (did you build the example?)"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let root = Path::new("/srv/examples");
        assert_eq!(
            resolve(root, "pixel-board/index.html"),
            Some(PathBuf::from("/srv/examples/pixel-board/index.html"))
        );
        assert_eq!(resolve(root, "../secret"), None);
        assert_eq!(resolve(root, "a/../../b"), None);
        assert_eq!(
            resolve(root, "/etc/passwd"),
            Some(PathBuf::from("/srv/examples/etc/passwd"))
        );
    }
}
