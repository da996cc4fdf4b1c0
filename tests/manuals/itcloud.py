"""IT Cloud's manual (seeds/001): its sample customer, text and requests, and its replies."""

from __future__ import annotations

USER, TOKEN = "miusuario@hotmail.com", "59k45nabeeqvi8wn2ja9"
TEXT = "mensaje de prueba enviado por metodo WEB"
WEB_GSM = "573117807125"  #: the WEB example's number (sent 2via)
#: the example of four numbers and its reply: one sent, one malformed, one not sent (0), one without credit
FOUR_GSM = "584142871901,57111,573802338546,573002333333"
FOUR_REPLY = "584142871901,12102253\n57111,-4\n573802338546,0\n573002333333,-3\n"
