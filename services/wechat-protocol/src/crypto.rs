//! Safe-mode (安全模式) message crypto: AES-256-CBC, IV = key[..16], PKCS#7 padding to a
//! 32-byte multiple, plaintext = random(16) || len (u32 BE) || message || appid (WeChat's message
//! encryption: developers.weixin.qq.com/doc/oplatform/developers/dev/push/encryption.md).

use aes::Aes256;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use rand::RngCore;

/// WeChat pads to 32 bytes, not the AES block size: a 16-byte unpadder rejects valid messages.
const PAD_BLOCK: usize = 32;

/// The EncodingAESKey's last character carries 2 spare bits that WeChat does not zero.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the EncodingAESKey must be 43 base64 characters")]
    BadKey,
    #[error("the encrypted message is not valid base64")]
    BadBase64,
    #[error("the encrypted message has a bad length or padding")]
    BadPadding,
    #[error("the decrypted message is malformed")]
    Malformed,
    #[error("the message was encrypted for another app")]
    WrongAppId,
}

/// Encrypts and decrypts the messages of one official account.
#[derive(Clone)]
pub struct MessageCrypto {
    key: [u8; 32],
    appid: String,
}

impl std::fmt::Debug for MessageCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCrypto")
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

impl MessageCrypto {
    /// `encoding_aes_key` is the 43-character key from the official-account console.
    pub fn new(encoding_aes_key: &str, appid: &str) -> Result<Self, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        let decoded = LENIENT_BASE64
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = decoded.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self {
            key,
            appid: appid.to_owned(),
        })
    }

    /// Encrypts `message` with a random prefix; returns the base64 `Encrypt` value.
    pub fn encrypt(&self, message: &str) -> String {
        let mut prefix = [0u8; 16];
        rand::rng().fill_bytes(&mut prefix);
        self.encrypt_with_prefix(&prefix, message)
    }

    /// Encrypts with a given 16-byte prefix (deterministic, for test vectors).
    pub fn encrypt_with_prefix(&self, prefix: &[u8; 16], message: &str) -> String {
        let mut plain = Vec::with_capacity(16 + 4 + message.len() + self.appid.len() + PAD_BLOCK);
        plain.extend_from_slice(prefix);
        // A message is a small XML document; u32 always holds its length.
        plain.extend_from_slice(
            &u32::try_from(message.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(self.appid.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let len = plain.len();
        let encryptor = cbc::Encryptor::<Aes256>::new(&self.key.into(), &self.iv().into());
        let cipher = match encryptor.encrypt_padded_mut::<NoPadding>(&mut plain, len) {
            Ok(cipher) => cipher,
            // Unreachable: the buffer is padded to a multiple of the block size above.
            Err(_) => return String::new(),
        };
        STANDARD.encode(cipher)
    }

    /// Decrypts an `Encrypt` value and checks that it was meant for our appid.
    pub fn decrypt(&self, encrypted: &str) -> Result<String, CryptoError> {
        let (message, receiver) = self.decrypt_with_receiver(encrypted)?;
        if receiver != self.appid {
            return Err(CryptoError::WrongAppId);
        }
        Ok(message)
    }

    /// Decrypts and returns the message with the receiver id it carries.
    pub fn decrypt_with_receiver(&self, encrypted: &str) -> Result<(String, String), CryptoError> {
        let mut data = STANDARD
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::BadBase64)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CryptoError::BadPadding);
        }
        let decryptor = cbc::Decryptor::<Aes256>::new(&self.key.into(), &self.iv().into());
        let plain = decryptor
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| CryptoError::BadPadding)?;
        let pad = usize::from(*plain.last().ok_or(CryptoError::BadPadding)?);
        if !(1..=PAD_BLOCK).contains(&pad)
            || pad > plain.len()
            || plain[plain.len() - pad..]
                .iter()
                .any(|b| usize::from(*b) != pad)
        {
            return Err(CryptoError::BadPadding);
        }
        let body = &plain[..plain.len() - pad];
        if body.len() < 20 {
            return Err(CryptoError::Malformed);
        }
        let len_bytes: [u8; 4] = body[16..20]
            .try_into()
            .map_err(|_| CryptoError::Malformed)?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let rest = &body[20..];
        if len > rest.len() {
            return Err(CryptoError::Malformed);
        }
        let message = std::str::from_utf8(&rest[..len]).map_err(|_| CryptoError::Malformed)?;
        let receiver = std::str::from_utf8(&rest[len..]).map_err(|_| CryptoError::Malformed)?;
        Ok((message.to_owned(), receiver.to_owned()))
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The official sample data, as binarywang/WxJava's WxCryptUtilTest uses it
    // (weixin-java-common/src/test/java/me/chanjar/weixin/common/util/crypto/WxCryptUtilTest.java).
    const V3_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const V3_APPID: &str = "wxb11529c136998cb6";
    const V3_ENCRYPT: &str =
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==";

    #[test]
    fn encrypts_the_official_sample() {
        let crypto = MessageCrypto::new(V3_KEY, V3_APPID).unwrap();
        let encrypted = crypto.encrypt_with_prefix(b"aaaabbbbccccdddd", "我是中文abcd123");
        assert_eq!(encrypted, V3_ENCRYPT);
    }

    #[test]
    fn decrypts_the_official_sample() {
        let crypto = MessageCrypto::new(V3_KEY, V3_APPID).unwrap();
        assert_eq!(crypto.decrypt(V3_ENCRYPT).unwrap(), "我是中文abcd123");
    }

    #[test]
    fn refuses_another_apps_message() {
        let crypto = MessageCrypto::new(V3_KEY, "wx0000000000000000").unwrap();
        assert_eq!(crypto.decrypt(V3_ENCRYPT), Err(CryptoError::WrongAppId));
    }

    #[test]
    fn pads_to_32_bytes_and_accepts_pads_above_16() {
        let crypto = MessageCrypto::new(V3_KEY, V3_APPID).unwrap();
        // 16 + 4 + 2 + 18 = 40 bytes of plaintext: a pad of 24, more than one AES block (WeChat
        // pads to 32 bytes, so a 16-byte PKCS#7 unpadder refuses real messages such as the one in
        // ArtisanCloud/PowerWeChat's src/kernel/Encryptor_test.go).
        let encrypted = crypto.encrypt("ab");
        let raw = STANDARD.decode(&encrypted).unwrap();
        assert_eq!(raw.len() % 32, 0);
        assert_eq!(raw.len(), 64);
        assert_eq!(crypto.decrypt(&encrypted).unwrap(), "ab");
        for len in 0..80 {
            let message = "x".repeat(len);
            assert_eq!(crypto.decrypt(&crypto.encrypt(&message)).unwrap(), message);
        }
    }

    #[test]
    fn rejects_garbage() {
        let crypto = MessageCrypto::new(V3_KEY, V3_APPID).unwrap();
        assert_eq!(crypto.decrypt("not base64!"), Err(CryptoError::BadBase64));
        assert_eq!(crypto.decrypt("AAAA"), Err(CryptoError::BadPadding));
        let mut tampered = STANDARD.decode(V3_ENCRYPT).unwrap();
        tampered[40] ^= 1;
        assert!(crypto.decrypt(&STANDARD.encode(tampered)).is_err());
        assert_eq!(
            MessageCrypto::new("short", V3_APPID).unwrap_err(),
            CryptoError::BadKey
        );
    }
}
