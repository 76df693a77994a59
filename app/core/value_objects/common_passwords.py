"""Passwords of 8+ characters that top the public breach-frequency lists."""

COMMON_PASSWORDS: frozenset[str] = frozenset(
    """
    password password1 password12 password123 password1234 passw0rd p@ssw0rd p@ssword
    12345678 123456789 1234567890 12345678910 123123123 123451234 987654321 0987654321
    11111111 111111111 1111111111 00000000 000000000 22222222 55555555 66666666 88888888
    99999999 12341234 11223344 1q2w3e4r 1q2w3e4r5t 1q2w3e4r5t6y q1w2e3r4 q1w2e3r4t5
    qwertyui qwertyuiop qwerty123 qwerty12 qwerty1234 qwertyu1 asdfghjk asdfghjkl
    zxcvbnm1 zxcvbnma 1qaz2wsx 1qaz2wsx3edc qazwsxedc zaq12wsx !qaz2wsx abcd1234
    abcdefgh abc12345 abcdef12 a1b2c3d4 aa123456 iloveyou iloveyou1 iloveyou2 sunshine
    sunshine1 princess princess1 football football1 baseball baseball1 basketball
    superman batman12 starwars trustno1 whatever welcome1 welcome123 letmein1 letmein123
    changeme changeme1 admin123 admin1234 administrator master12 michael1 jennifer
    jordan23 charlie1 computer internet mustang1 shadow12 dragon12 monkey12 freedom1
    passpass secret12 secret123 qwerty!@ 1234qwer qwer1234 asdf1234 zxcv1234 987654321a
    google123 samsung1 whatever1 babygirl1 chocolate butterfly liverpool elizabeth
    passwort motdepasse contraseña senha123 azerty123 azertyuiop
    """.split()
)
