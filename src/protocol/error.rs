//! `WS_Error`: every error the worker answers with, its `errorMessage` and
//! `msg` (docs/protocol.md section 5), and the cut applied to echoed values.

/// Longest callid the worker looks up, and longest echoed value, in bytes.
pub const MAX_ECHO_BYTES: usize = 128;

/// Every error the worker answers with `WS_Error` (docs/protocol.md section 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// callid missing, null, empty or blank.
    CallidEmpty,
    /// No call record, or a callid that is too long or holds a control character.
    InvalidCallId(String),
    /// The call record has no `campaign_id`.
    NoCampaign(String),
    /// AccountNumber missing or blank.
    AccountEmpty,
    /// The call record's `account_number` differs from the request's.
    InvalidAccount(String),
    /// The stored outcome list of this campaign cannot be used.
    CorruptOutcomes(String),
    /// Redis did not answer before the request's deadline.
    CacheUnavailable,
    /// The body cannot be read as a request; the text is a short reason.
    Malformed(String),
    /// A subtopic the worker does not serve.
    UnsupportedSubtopic(String),
    /// ParentBusinessOutcomeId missing or blank.
    ParentEmpty,
    /// No outcome of the campaign has this id.
    InvalidParent(String),
}

impl WsError {
    /// The reply's `errorMessage`, with echoed values cut to [`MAX_ECHO_BYTES`].
    pub fn error_message(&self) -> String {
        match self {
            Self::CallidEmpty => "Callid is empty".to_owned(),
            Self::InvalidCallId(id) => format!("Invalid Call ID:{}", cut(id)),
            Self::NoCampaign(id) => format!("No campaign for Call ID:{}", cut(id)),
            Self::AccountEmpty => "AccountNumber is empty".to_owned(),
            Self::InvalidAccount(account) => format!("Invalid AccountNumber:{}", cut(account)),
            Self::CorruptOutcomes(campaign) => {
                format!(
                    "Corrupt business outcome data for Campaign ID:{}",
                    cut(campaign)
                )
            }
            Self::CacheUnavailable => "Cache unavailable".to_owned(),
            Self::Malformed(reason) => format!("Malformed request: {}", cut(reason)),
            Self::UnsupportedSubtopic(subtopic) => {
                format!("Unsupported subtopic:{}", cut(subtopic))
            }
            Self::ParentEmpty => "ParentBusinessOutcomeId is empty".to_owned(),
            Self::InvalidParent(id) => format!("Invalid ParentBusinessOutcomeId:{}", cut(id)),
        }
    }

    /// The reply's `msg`.
    pub fn msg(&self) -> &'static str {
        match self {
            Self::CallidEmpty | Self::InvalidCallId(_) | Self::NoCampaign(_) => "Invalid Call ID.",
            Self::AccountEmpty | Self::InvalidAccount(_) => "Invalid Account Number.",
            Self::CorruptOutcomes(_) => "Business Outcomes unavailable.",
            Self::CacheUnavailable => "Service temporarily unavailable.",
            Self::Malformed(_) | Self::UnsupportedSubtopic(_) => "Invalid Request.",
            Self::ParentEmpty | Self::InvalidParent(_) => "Invalid Parent Business Outcome ID.",
        }
    }

    /// A stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::CallidEmpty => "callid_empty",
            Self::InvalidCallId(_) => "invalid_callid",
            Self::NoCampaign(_) => "no_campaign",
            Self::AccountEmpty => "account_empty",
            Self::InvalidAccount(_) => "invalid_account",
            Self::CorruptOutcomes(_) => "corrupt_outcomes",
            Self::CacheUnavailable => "cache_unavailable",
            Self::Malformed(_) => "malformed",
            Self::UnsupportedSubtopic(_) => "unsupported_subtopic",
            Self::ParentEmpty => "parent_empty",
            Self::InvalidParent(_) => "invalid_parent",
        }
    }
}

/// Cuts `text` to at most [`MAX_ECHO_BYTES`] bytes at a character boundary.
pub fn cut(text: &str) -> &str {
    if text.len() <= MAX_ECHO_BYTES {
        return text;
    }
    let mut end = MAX_ECHO_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_respects_character_boundaries() {
        let text = "é".repeat(100); // 200 bytes
        let cut_text = cut(&text);
        assert_eq!(cut_text.len(), 128);
        assert_eq!(cut("short"), "short");
        let odd = format!("a{}", "é".repeat(100));
        assert_eq!(cut(&odd).len(), 127);
    }

    #[test]
    fn every_error_row_has_its_message_and_msg() {
        let rows = [
            (WsError::CallidEmpty, "Callid is empty", "Invalid Call ID."),
            (
                WsError::InvalidCallId("1".into()),
                "Invalid Call ID:1",
                "Invalid Call ID.",
            ),
            (
                WsError::NoCampaign("1".into()),
                "No campaign for Call ID:1",
                "Invalid Call ID.",
            ),
            (
                WsError::AccountEmpty,
                "AccountNumber is empty",
                "Invalid Account Number.",
            ),
            (
                WsError::InvalidAccount("9".into()),
                "Invalid AccountNumber:9",
                "Invalid Account Number.",
            ),
            (
                WsError::CorruptOutcomes("4".into()),
                "Corrupt business outcome data for Campaign ID:4",
                "Business Outcomes unavailable.",
            ),
            (
                WsError::CacheUnavailable,
                "Cache unavailable",
                "Service temporarily unavailable.",
            ),
            (
                WsError::Malformed("x".into()),
                "Malformed request: x",
                "Invalid Request.",
            ),
            (
                WsError::UnsupportedSubtopic("S".into()),
                "Unsupported subtopic:S",
                "Invalid Request.",
            ),
        ];
        for (error, message, msg) in rows {
            assert_eq!(
                (error.error_message().as_str(), error.msg()),
                (message, msg)
            );
        }
    }
}
