//! Client messages that arrive in pieces (`protocol::pieces`): each piece is stored in the doc
//! store; the invocation that stores the last one handles the whole message as one frame, with
//! the same all-or-nothing validation as any other. A malformed or refused piece closes the
//! connection, like any bad frame, so a client cannot fill the store with pieces; first the
//! client is told why, in y-protocols' permission-denied message (API Gateway's close carries no
//! reason), which y-websocket logs and the ylambda-client adapter turns into an error event and a
//! reconnect backoff, so a message the server will never take is not re-sent in a tight loop.
use super::{Handler, HandlerError, HandlerResult};
use crate::ports::{PieceOutcome, PieceRefusal};
use crate::protocol::pieces::parse_piece;

impl Handler {
    pub(super) async fn on_piece(
        &self,
        connection_id: &str,
        endpoint: &str,
        body: &str,
    ) -> HandlerResult<()> {
        let piece = match parse_piece(body, self.config.max_pieces) {
            Ok(piece) => piece,
            Err(error) => {
                return Err(self
                    .refuse(connection_id, endpoint, error.to_string())
                    .await)
            }
        };
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
            PieceOutcome::Refused(why) => {
                let limit = match why {
                    PieceRefusal::TooLarge => format!(
                        " ({} bytes, YLAMBDA_MAX_ASSEMBLED_BYTES)",
                        self.config.max_assembled_bytes
                    ),
                    PieceRefusal::TooManyOpen => format!(
                        " ({}, YLAMBDA_MAX_OPEN_MESSAGES)",
                        self.config.max_open_messages
                    ),
                    PieceRefusal::CountMismatch | PieceRefusal::Overlap => String::new(),
                };
                let reason = format!(
                    "piece {} of message {:?}: {why}{limit}",
                    piece.index, piece.message_id
                );
                Err(self.refuse(connection_id, endpoint, reason).await)
            }
        }
    }

    /// Tells the client why its message is refused; the caller's error closes the connection.
    async fn refuse(&self, connection_id: &str, endpoint: &str, reason: String) -> HandlerError {
        self.tell_denied(
            connection_id,
            endpoint,
            &format!("message refused: {reason}"),
        )
        .await;
        HandlerError::BadRequest(reason)
    }
}
