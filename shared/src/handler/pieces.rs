//! Client messages that arrive in pieces (`protocol::pieces`): each piece is stored in the doc
//! store; the invocation that stores the last one handles the whole message as one frame, with
//! the same all-or-nothing validation as any other. A malformed or refused piece closes the
//! connection, like any bad frame, so a client cannot fill the store with pieces.
use super::{Handler, HandlerError, HandlerResult};
use crate::ports::PieceOutcome;
use crate::protocol::pieces::parse_piece;

impl Handler {
    pub(super) async fn on_piece(
        &self,
        connection_id: &str,
        endpoint: &str,
        body: &str,
    ) -> HandlerResult<()> {
        let piece = parse_piece(body, self.config.max_pieces)
            .map_err(|e| HandlerError::BadRequest(e.to_string()))?;
        let outcome = self
            .ports
            .docs
            .put_piece(connection_id, &piece, &self.config.piece_limits())
            .await?;
        match outcome {
            PieceOutcome::Waiting | PieceOutcome::Duplicate => Ok(()),
            PieceOutcome::Complete(text) => {
                tracing::debug!(
                    connection_id,
                    message_id = piece.message_id,
                    pieces = piece.count,
                    bytes = text.len(),
                    "message assembled from pieces"
                );
                self.on_doc_frame(connection_id, endpoint, &text).await
            }
            PieceOutcome::Refused(why) => Err(HandlerError::BadRequest(format!(
                "piece {} of message {:?}: {why}",
                piece.index, piece.message_id
            ))),
        }
    }
}
