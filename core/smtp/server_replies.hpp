// The server session's own replies, in one place so that codes and texts stay consistent.
// Codes: RFC 5321 4.2; enhanced codes: RFC 3463 (and RFC 6531 for 5.6.7).
#pragma once

#include "core/smtp/reply.hpp"

namespace ringmta::smtp::replies {

inline constexpr Reply kOk{250, {2, 0, 0}, "Ok"};
inline constexpr Reply kSenderOk{250, {2, 1, 0}, "Sender ok"};
inline constexpr Reply kRecipientOk{250, {2, 1, 5}, "Recipient ok"};
inline constexpr Reply kMessageAccepted{250, {2, 0, 0}, "Message accepted"};
inline constexpr Reply kStartData{354, {}, "End data with <CR><LF>.<CR><LF>"};
inline constexpr Reply kBye{221, {2, 0, 0}, "Bye"};
inline constexpr Reply kCannotVrfy{252, {2, 5, 0}, "Cannot VRFY user, but will accept message"};
inline constexpr Reply kHelp{214, {2, 0, 0}, "See RFC 5321"};
inline constexpr Reply kReadyTls{220, {2, 0, 0}, "Ready to start TLS"};

inline constexpr Reply kUnknownCommand{500, {5, 5, 2}, "Error: command not recognized"};
inline constexpr Reply kLineTooLong{500, {5, 5, 2}, "Error: line too long"};
inline constexpr Reply kBareNewline{500, {5, 5, 2}, "Error: bare CR or LF in command line"};
inline constexpr Reply kSyntax{501, {5, 5, 4}, "Error: syntax error in arguments"};
inline constexpr Reply kBadSender{501, {5, 1, 7}, "Error: bad sender address syntax"};
inline constexpr Reply kBadRecipient{501, {5, 1, 3}, "Error: bad recipient address syntax"};
inline constexpr Reply kPathTooLong{501, {5, 5, 4}, "Error: path too long"};
inline constexpr Reply kBadParameter{501, {5, 5, 4}, "Error: bad or repeated MAIL/RCPT parameter"};
inline constexpr Reply kUnknownParameter{555, {5, 5, 4}, "Error: MAIL/RCPT parameter not supported"};
inline constexpr Reply kBdatSyntax{501, {5, 5, 4}, "Error: BDAT chunk size unreadable; closing"};

inline constexpr Reply kNoService{503, {5, 5, 1}, "Error: no SMTP service here"};
inline constexpr Reply kNeedHelo{503, {5, 5, 1}, "Error: send HELO/EHLO first"};
inline constexpr Reply kNestedMail{503, {5, 5, 1}, "Error: nested MAIL command"};
inline constexpr Reply kNeedMail{503, {5, 5, 1}, "Error: need MAIL command"};
inline constexpr Reply kNeedRcpt{503, {5, 5, 1}, "Error: need RCPT command"};
inline constexpr Reply kDataAfterBdat{503, {5, 5, 1}, "Error: DATA after BDAT in one transaction"};
inline constexpr Reply kTlsActive{503, {5, 5, 1}, "Error: TLS already active"};
inline constexpr Reply kNeedTls{530, {5, 7, 0}, "Must issue a STARTTLS command first"};
inline constexpr Reply kAuthNotEnabled{503, {5, 5, 1}, "Error: authentication not enabled"};

// AUTH (RFC 4954 4 and 6). The 334 challenges carry no enhanced code; LOGIN's are the
// base64 of "Username:" and "Password:", as every LOGIN client expects.
inline constexpr Reply kAuthChallengeEmpty{334, {}, ""};
inline constexpr Reply kAuthChallengeUser{334, {}, "VXNlcm5hbWU6"};
inline constexpr Reply kAuthChallengePassword{334, {}, "UGFzc3dvcmQ6"};
inline constexpr Reply kAuthOk{235, {2, 7, 0}, "Authentication successful"};
inline constexpr Reply kAuthFailed{535, {5, 7, 8}, "Authentication credentials invalid"};
inline constexpr Reply kAuthTempFail{454, {4, 7, 0}, "Temporary authentication failure"};
inline constexpr Reply kAuthTooMany{421, {4, 7, 0},
                                    "Too many failed authentication attempts; closing"};
inline constexpr Reply kAuthCancelled{501, {5, 0, 0}, "Authentication cancelled"};
inline constexpr Reply kAuthBadBase64{501, {5, 5, 2}, "Error: invalid base64 in AUTH exchange"};
inline constexpr Reply kAuthLineTooLong{500, {5, 5, 6}, "Authentication exchange line is too long"};
inline constexpr Reply kAuthUnknownMechanism{504, {5, 5, 4}, "Unrecognized authentication type"};
inline constexpr Reply kAuthNeedTls{538, {5, 7, 11},
                                    "Encryption required for requested authentication mechanism"};
inline constexpr Reply kAlreadyAuthenticated{503, {5, 5, 1}, "Error: already authenticated"};
inline constexpr Reply kAuthInTransaction{503, {5, 5, 1},
                                          "Error: AUTH not allowed during a mail transaction"};
inline constexpr Reply kNotOffered{502, {5, 5, 1}, "Error: command not implemented"};
inline constexpr Reply kNoValidRecipients{554, {5, 5, 1}, "Error: no valid recipients"};

inline constexpr Reply kTooManyRecipients{452, {4, 5, 3}, "Error: too many recipients"};
inline constexpr Reply kSizeDeclaredTooBig{552, {5, 3, 4}, "Error: message size exceeds limit"};
inline constexpr Reply kTooBig{552, {5, 3, 4}, "Error: message too big"};
inline constexpr Reply kNeedSmtputf8{553, {5, 6, 7}, "Error: non-ASCII address needs SMTPUTF8"};
inline constexpr Reply kBodyNotSupported{555, {5, 5, 4}, "Error: BODY=BINARYMIME not supported"};
inline constexpr Reply kBareNewlineInData{554, {5, 6, 0},
                                          "Error: bare CR or LF in message data (RFC 5321 2.3.8)"};
inline constexpr Reply kLongTextLine{554, {5, 6, 0},
                                     "Error: text line over 1000 octets (RFC 5321 4.5.3.1.6)"};

}  // namespace ringmta::smtp::replies
